"""Calibration by the controls that hide nothing: an attack's "no leak" counts only if it finds the
leak where there is one.

The identity transform sends the image itself and hides nothing. An attack that cannot read
the sensitive attribute through it (its verdict on the identity is not *compromised*) cannot
read it from this data at all: an attack network too small or trained too briefly for these
images, a judge that cannot tell the attribute on clean images, too few images. Its score on
the subject is then no evidence of privacy. Such an attack is *not calibrated*: the report says
so beside its result, and a *not compromised* verdict that rests on no calibrated attack is
*inconclusive*. A *compromised* finding stands whatever the calibration: reading the attribute
through the subject is a leak however weak the attack is elsewhere.

Where the subject sends another shape than the image's, the attacks that learn from what is sent
are checked instead on the same-shape control (:mod:`obfaudit.transforms.shaped`): a tensor of the
subject's shape that hides nothing (or, smaller than the image, keeps its principal components),
on which they train the network they train on the subject. The identity checks the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from obfaudit.records import AttackRecord
from obfaudit.threat import Verdict, overall_verdict
from obfaudit.transforms.shaped import SAME_SHAPE

#: The control that calibrates the attacks.
CALIBRATION_CONTROL = "identity"


@dataclass(frozen=True)
class Calibration:
    """Whether one attack finds the attribute through the control that checks it."""

    attack: str
    calibrated: bool | None
    """True: it reads the attribute through the control; False: it does not; None: not checked
    (no control ran, or the attack gives no verdict)."""
    control_verdict: Verdict | None
    why: str
    control: str = CALIBRATION_CONTROL
    """The control that checked it: the identity, or the same-shape control (the subject's kind of
    tensor, :mod:`obfaudit.transforms.shaped`) for the attacks that learn from what is sent."""

    def to_dict(self) -> dict:
        return {
            "calibrated": self.calibrated,
            "control": self.control,
            "control_verdict": self.control_verdict,
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
    """The network kind an attack trained (``fit.network.arch``; where it trained both kinds and kept the
    stronger, both, as that is its procedure), None for one that trains no network."""
    if record is None:
        return None
    fit = record.fit or {}
    if fit.get("candidates"):
        return " or ".join(sorted(c["network"]["arch"] for c in fit["candidates"]))
    return (fit.get("network") or {}).get("arch")


def _check(attack: str, mine: AttackRecord, rec: AttackRecord | None, control: str) -> Calibration:
    """``attack``'s calibration by its record ``rec`` on ``control`` (None: it did not run there)."""
    if rec is None:
        why = f"not checked: it did not run on the {control} control"
        return Calibration(attack, None, None, why, control)
    if _network(rec) != _network(mine) and _network(mine) != "constant":
        # (a subject that sends the same tensor for every image gets the closed-form constant, the
        # best any network of any kind can learn there: the control's network still checks the attack)
        why = (
            f"not checked: on the {control} control it was {_network(rec) or 'no network'}, on the subject "
            f"{_network(mine) or 'no network'}"
        )
        return Calibration(attack, None, None, why, control)
    if rec.verdict is None:
        why = f"no verdict on the {control} control ({_score(rec)})"
        return Calibration(attack, None, None, why, control)
    if rec.verdict is Verdict.COMPROMISED:
        why = f"reads it through the {control} control ({_score(rec)})"
        return Calibration(attack, True, rec.verdict, why, control)
    hides = "which hides nothing" if control == CALIBRATION_CONTROL else "which hides what its shape must"
    why = (
        f"not calibrated: through the {control} control, {hides}, it is {rec.verdict} ({_score(rec)}), "
        "so its result is no evidence of privacy"
    )
    return Calibration(attack, False, rec.verdict, why, control)


def calibrate(
    subject: Iterable[AttackRecord],
    control: Iterable[AttackRecord] | None,
    shaped: Iterable[AttackRecord] | None = None,
) -> dict[str, Calibration]:
    """The calibration of each of the ``subject``'s attacks from the identity control's records (None: no
    control ran) or, for an attack that ran on it, the same-shape control's (``shaped``: the subject's
    kind of tensor, so the very network kind the attack trains on the subject is checked). An attack
    that trained another network on its control than on the subject (the study's MLP on a small tensor,
    a convolutional one on the image) is not checked: the control says nothing of the network that
    attacked the subject."""
    mine = {r.attack: r for r in subject}
    by_attack = {r.attack: r for r in control or ()}
    by_shape = {r.attack: r for r in shaped or ()}
    out = {}
    for attack, record in mine.items():
        if attack in by_shape:
            out[attack] = _check(attack, record, by_shape[attack], SAME_SHAPE)
        elif control is None:
            out[attack] = Calibration(attack, None, None, "not checked: the identity control did not run")
        else:
            out[attack] = _check(attack, record, by_attack.get(attack), CALIBRATION_CONTROL)
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
