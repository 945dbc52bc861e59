"""``obfaudit audit ... --known-pairs 0,10,100,1000``: how much must the attacker know? (The sweep
runs in :func:`obfaudit.audit.sweeps.audit_known_pairs`; its rows and reading are made here.)

The audit runs as usual (k = 0: the eavesdropper with its generated proxies, the server with
every training pair), then once more per k > 0 with only the known-pairs attacks
(:mod:`obfaudit.attacks.known_pairs`), each into ``OUT/known-pairs-K/`` and sharing the judge
through the cache. The rows (``OUT/knowledge.json``) and the figure (``OUT/figures/
knowledge.png``, in the audit's report) give, per k, the worst-case F_a and the best SSIM with
their intervals: the proxy-only adversary at k = 0, the known-pairs attacks at each k, and the
server, which holds every training pair, as the end point. The reading names the smallest k
whose worst case is *compromised* (its interval above the line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from obfaudit.errors import ObfauditError
from obfaudit.threat import Party

if TYPE_CHECKING:
    from obfaudit.audit.document import AuditReport

KNOWN_PAIRS_ATTACKS = ("knownpairs", "knownpairs-decoder")


def known_pairs_list(value: str | tuple | list) -> tuple[int, ...]:
    """``0,10,100`` (or several such) -> (0, 10, 100), each once, ascending; one line on a bad entry."""
    parts = value if isinstance(value, tuple | list) else (value,)
    out = []
    for part in parts:
        for item in str(part).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                k = int(item)
            except ValueError:
                raise ObfauditError(
                    f"--known-pairs {item!r}: give whole numbers, e.g. 0,10,100,1000"
                ) from None
            if k < 0:
                raise ObfauditError(f"--known-pairs {k}: a number of pairs is 0 or more")
            out.append(k)
    if not out:
        raise ObfauditError("--known-pairs: give at least one number of pairs, e.g. 0,10,100,1000")
    return tuple(sorted(set(out)))


def _worst(records, party: Party | None = None, attacks: tuple[str, ...] | None = None) -> dict:
    """The strongest attack by F_a (highest lower bound) and the best by SSIM among ``records``."""
    from obfaudit.report.collect import strongest_by

    chosen = [
        r for r in records if (party is None or r.party == party) and (attacks is None or r.attack in attacks)
    ]
    out: dict = {"attacks": [r.attack for r in chosen]}
    for metric, key in (("feature_accuracy", "fa"), ("ssim", "ssim")):
        top = strongest_by(chosen, metric)
        if top is not None:
            out.update(
                {
                    key: top.metrics[metric],
                    f"{key}_ci": top.metrics.interval(metric),
                    f"{key}_attack": top.attack,
                }
            )
            if metric == "feature_accuracy":
                out["verdict"] = top.verdict
    return out


def knowledge_rows(main: AuditReport, by_k: dict[int, AuditReport], n_train: int) -> list[dict]:
    """k = 0 (the proxy-only adversary), each k of the sweep, the server. The adversary with k pairs
    still holds what it had at k = 0 (the public transform, its proxies): its worst case is the
    strongest of its k = 0 attacks and the known-pairs attacks on the k pairs, so the curve never
    falls below k = 0's (ten stolen pairs once read 14.4% where the proxies alone read 90.9%)."""
    from obfaudit.records import Experiment

    def experiments(rep: AuditReport) -> list[Experiment]:
        return [Experiment.from_attack(r, id=f"{r.subject}/{r.attack}") for r in rep.records]

    own = experiments(main)
    alone = [e for e in own if e.party == Party.ADVERSARY]
    rows = [{"k": 0, "who": "adversary (its generated proxies only)", **_worst(alone)}]
    for k, rep in sorted(by_k.items()):
        pairs = [e for e in experiments(rep) if e.attack in KNOWN_PAIRS_ATTACKS]
        rows.append(
            {
                "k": k,
                "who": f"adversary with {k} known pairs (and what it held at k = 0)",
                **_worst(alone + pairs),
                "pairs_alone": _worst(pairs),
            }
        )
    rows.append({"k": n_train, "who": f"server (all {n_train} training pairs)", **_worst(own, Party.SERVER)})
    return rows


def knowledge_reading(rows: list[dict], threshold: float) -> str:
    """The smallest k at which the adversary's worst case is compromised, and the end points."""
    adversary = [r for r in rows[:-1] if r.get("fa") is not None]
    broken = [r for r in adversary if r.get("verdict") == "compromised"]
    server = rows[-1]
    first = (
        f"the smallest k at which the adversary's worst case is compromised (its F_a interval above "
        f"the {100 * threshold:.0f}% line) is {broken[0]['k']} ({broken[0]['fa_attack']}, F_a "
        f"{100 * broken[0]['fa']:.1f}%)"
        if broken
        else "no k tried makes the adversary's worst case compromised (above the "
        f"{100 * threshold:.0f}% line)"
    )
    end = (
        f"; the server, with all {server['k']} pairs, reads {100 * server['fa']:.1f}% ({server['fa_attack']})"
        if server.get("fa") is not None
        else ""
    )
    return first[0].upper() + first[1:] + end + "."


__all__ = ["KNOWN_PAIRS_ATTACKS", "knowledge_reading", "knowledge_rows", "known_pairs_list"]
