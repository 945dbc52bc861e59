"""Calibration by the identity control: an attack's "no leak" counts only if it finds the leak
where there is one.

The identity transform sends the image itself and hides nothing. An attack that cannot read
the sensitive attribute through it (its verdict on the identity is not *compromised*) cannot
read it from this data at all: an attack network too small or trained too briefly for these
images, a judge that cannot tell the attribute on clean images, too few images. Its score on
the subject is then no evidence of privacy. Such an attack is *not calibrated*: the report says
so beside its result, and a *not compromised* verdict that rests on no calibrated attack is
*inconclusive*. A *compromised* finding stands whatever the calibration: reading the attribute
through the subject is a leak however weak the attack is elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from obfaudit.records import AttackRecord
from obfaudit.threat import Verdict, overall_verdict

#: The control that calibrates the attacks.
CALIBRATION_CONTROL = "identity"


@dataclass(frozen=True)
class Calibration:
    """Whether one attack finds the attribute through the identity control."""

    attack: str
    calibrated: bool | None
    """True: it reads the attribute through the identity; False: it does not; None: not checked
    (no identity control ran, or the attack gives no verdict)."""
    control_verdict: Verdict | None
    why: str

    def to_dict(self) -> dict:
        return {
            "calibrated": self.calibrated,
            "identity_verdict": self.control_verdict,
            "why": self.why,
        }


def _score(record: AttackRecord) -> str:
    m = record.metrics
    parts = []
    if m.feature_accuracy is not None:
        ci = m.interval()
        parts.append(f"F_a {m.feature_accuracy:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else ""))
    if m.ssim is not None:
        parts.append(f"SSIM {m.ssim:.3f}")
    return ", ".join(parts) or "no score"


def _network(record: AttackRecord | None) -> str | None:
    """The architecture an attack trained (``fit.network.arch``), None for one that trains no network."""
    return ((record.fit or {}).get("network") or {}).get("arch") if record is not None else None


def calibrate(
    subject: Iterable[AttackRecord], control: Iterable[AttackRecord] | None
) -> dict[str, Calibration]:
    """The calibration of each of the ``subject``'s attacks from the identity control's records (None: no
    control ran). An attack that trained another network on the identity than on the subject (the study's
    MLP on a small tensor, a convolutional one on the image) is not checked: the identity says nothing of
    the network that attacked the subject."""
    mine = {r.attack: r for r in subject}
    by_attack = {r.attack: r for r in control or ()}
    out = {}
    for attack in mine:
        rec = by_attack.get(attack)
        if control is None:
            out[attack] = Calibration(attack, None, None, "not checked: the identity control did not run")
        elif rec is None:
            out[attack] = Calibration(attack, None, None, "not checked: it did not run on the identity")
        elif _network(rec) != _network(mine.get(attack)) and _network(mine.get(attack)) != "constant":
            # (a subject that sends the same tensor for every image gets the closed-form constant, the
            # best any network of any kind can learn there: the identity's network still checks the attack)
            why = (
                f"not checked: on the identity it was {_network(rec) or 'no network'}, on the subject "
                f"{_network(mine.get(attack)) or 'no network'}"
            )
            out[attack] = Calibration(attack, None, None, why)
        elif rec.verdict is None:
            out[attack] = Calibration(attack, None, None, f"no verdict on the identity ({_score(rec)})")
        elif rec.verdict is Verdict.COMPROMISED:
            out[attack] = Calibration(
                attack, True, rec.verdict, f"reads it through the identity ({_score(rec)})"
            )
        else:
            out[attack] = Calibration(
                attack,
                False,
                rec.verdict,
                f"not calibrated: through the identity, which hides nothing, it is {rec.verdict} "
                f"({_score(rec)}), so its result is no evidence of privacy",
            )
    return out


def calibrated_verdict(
    records: Iterable[AttackRecord], calibration: Mapping[str, Calibration]
) -> Verdict | None:
    """The verdict of ``records`` (compromised if any attack says so), except that *not compromised*
    needs at least one calibrated attack behind it, else it is *inconclusive*. Where no calibration was
    checked at all (no identity control), the verdict is left as the attacks give it."""
    return verdict_with_calibration(
        [(r.attack, r.verdict) for r in records], {a: c.calibrated for a, c in calibration.items()}
    )


def verdict_with_calibration(
    verdicts: Iterable[tuple[str, Verdict | str | None]], calibrated: Mapping[str, bool | None]
) -> Verdict | None:
    """:func:`calibrated_verdict` of (attack, verdict) pairs and each attack's calibration."""
    given = [(a, v) for a, v in verdicts if v]
    verdict = overall_verdict([v for _, v in given])
    if verdict is not Verdict.NOT_COMPROMISED:
        return verdict
    checked = [calibrated.get(a) for a, _ in given]
    if all(c is None for c in checked) or any(c is True for c in checked):
        return verdict
    return Verdict.INCONCLUSIVE


__all__ = [
    "CALIBRATION_CONTROL",
    "Calibration",
    "calibrate",
    "calibrated_verdict",
    "verdict_with_calibration",
]
