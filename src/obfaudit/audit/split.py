"""``obfaudit audit --transform MODEL --split NODE[,NODE...]``: where to cut a model (the sweep runs in
:func:`obfaudit.audit.sweeps.audit_split`; its rows and report are made here).

A user brings a whole model and asks where to split it between the device and the server.
Each cut (:mod:`obfaudit.transforms.split`) is audited as a transform of its own, into
``OUT/<node>/`` with its own report; the controls and the judge are computed once and
shared through the audits' cache. Then, per cut: the worst-case attribute accuracy with its
interval, the best reconstruction, the bytes sent per image, and the utility at the cut (the
task label read from what is sent by a linear probe trained on the transformed training
split: how much of the task the rest of the model can still use), in ``OUT/split.json``, a
figure of leakage against depth and ``OUT/report.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obfaudit.errors import ObfauditError
from obfaudit.records import AuditDocument, Kind
from obfaudit.results import Result


def split_nodes(split: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``--split layer1,layer2 layer3`` -> (layer1, layer2, layer3), each once, in order."""
    if isinstance(split, str):
        split = (split,)
    nodes = [n.strip() for part in split for n in part.split(",") if n.strip()]
    if not nodes:
        raise ObfauditError("--split: give at least one node, e.g. --split layer1,layer2")
    return tuple(dict.fromkeys(nodes))


def safe_node(node: str) -> str:
    """A cut's folder name."""
    from obfaudit._io import safe_name

    return safe_name(node, "cut")


@dataclass
class SplitReport(Result):
    """One audit per cut and the sweep's summary rows, shallow to deep."""

    model: str
    cuts: list[dict]
    baselines: dict
    task: str
    report: str | None = None
    results: str | None = None
    audits: dict[str, Any] = field(default_factory=dict, repr=False)
    """Each cut's :class:`~obfaudit.audit.document.AuditReport`."""
    screen: str | None = None
    """What the screening budget ran, when the sweep is a screen (``--budget quick``)."""

    def to_dict(self) -> dict:
        from obfaudit._io import to_jsonable

        return to_jsonable(
            {
                "model": self.model,
                "cuts": self.cuts,
                "baselines": self.baselines,
                "task": self.task,
                "report": self.report,
                "results": self.results,
                "screen": self.screen,
            }
        )

    def summary(self) -> str:
        b = self.baselines
        lines = [
            f"{self.model}: {len(self.cuts)} cuts audited on {b['attribute']} "
            f"(line {b['threshold']:.0%}, chance {b['chance']:.1%}); "
            f"task: {self.task}, read by a linear probe",
            f"  {'cut':<16} {'verdict':<16} {'worst F_a [95%]':<26} {'best SSIM (identity/shape)':<27} "
            f"{'PSNR dB':<8} {'bytes/img':>10} {'task at the cut':>16}",
        ]
        for c in self.cuts:
            fa, ci = c.get("worst_fa"), c.get("worst_fa_ci")
            fa = f"{fa:.1%} [{ci[0]:.1%}, {ci[1]:.1%}] {c['worst_attack']}" if fa is not None and ci else "-"
            ssim = "-"
            if c.get("best_ssim") is not None:
                ceilings = [
                    f"{c[k]:.3f}" if c.get(k) is not None else "-" for k in ("identity_ssim", "shape_ssim")
                ]
                ssim = f"{c['best_ssim']:.3f} ({'/'.join(ceilings)})"
            psnr = f"{c['best_psnr']:.1f}" if c.get("best_psnr") is not None else "-"
            psnr = "exact" if c.get("best_exact") else psnr
            util = f"{c['utility']:.1%}" if c.get("utility") is not None else "-"
            lines.append(
                f"  {c['node']:<16} {c['verdict'] or 'no verdict':<16} {fa:<26} {ssim:<27} {psnr:<8} "
                f"{c['bytes_per_image']:>10,} {util:>16}"
            )
        weaker = {c["node"]: c["weaker_attacks_only"] for c in self.cuts if c.get("weaker_attacks_only")}
        for node, attacks in weaker.items():
            lines.append(f"  {node}: the verdict rests on weaker attacks ({', '.join(attacks)} did not run)")
        if self.screen:
            lines.append(
                f"  a screen (--budget quick: {self.screen}): each cut's verdict can find a leak, not rule "
                "one out; --budget standard audits every cut in full"
            )
        if self.report:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


def cut_row(
    node: str, rep: Any, shape: tuple[int, ...], utility: dict | None, *, folder: str | None = None
) -> dict:
    import math

    from obfaudit.transforms.shaped import SAME_SHAPE

    scored = [r for r in rep.records if r.metrics.feature_accuracy is not None]
    worst = max(scored, key=lambda r: r.metrics.feature_accuracy, default=None)
    images = [r for r in rep.records if r.metrics.ssim is not None]
    best = max(images, key=lambda r: r.metrics.ssim, default=None)
    return {
        "node": node,
        "folder": folder or safe_node(node),
        "subject": rep.subject,
        "shape": list(shape),
        "bytes_per_image": 4 * math.prod(shape),  # float32 on the wire
        "verdict": rep.verdict,
        "worst_attack": worst.attack if worst else None,
        "worst_fa": worst.metrics.feature_accuracy if worst else None,
        "worst_fa_ci": worst.metrics.interval() if worst else None,
        "best_ssim_attack": best.attack if best else None,
        "best_ssim": best.metrics.ssim if best else None,
        "best_ssim_ci": best.metrics.interval("ssim") if best else None,
        # an exact reconstruction's PSNR is infinite, which strict JSON cannot hold: say it in words
        "best_psnr": best.metrics.psnr_db if best and math.isfinite(best.metrics.psnr_db or 0.0) else None,
        "best_exact": bool(best and best.metrics.psnr_db is not None and math.isinf(best.metrics.psnr_db)),
        "best_psnr_ci": best.metrics.interval("psnr_db") if best else None,
        "identity_ssim": _control_ssim(rep.document, best.attack, "identity") if best else None,
        # what it rebuilds of a tensor of this cut's shape that hides as little as the shape can
        "shape_ssim": _control_ssim(rep.document, best.attack, SAME_SHAPE) if best else None,
        "utility": utility["accuracy"] if utility else None,
        "utility_ci": utility["ci"] if utility else None,
        "utility_chance": utility["chance"] if utility else None,
        "weaker_attacks_only": rep.document.weaker_attacks_only or {},
        "report": rep.report,
    }


def _control_ssim(document: AuditDocument, attack: str, control: str) -> float | None:
    """The SSIM ``attack`` reaches through ``control``: through the identity, the most it can rebuild at
    all; through the same-shape control, the most it rebuilds of the cut's kind of tensor (the ceilings
    beside a cut's best)."""
    for e in document.rows(control):
        if e.kind == Kind.CONTROL and e.attack == attack:
            return e.metrics.ssim
    return None


def task_utility(
    transform, train, test, task: str, *, seed: int, device: str
) -> tuple[tuple[int, ...], dict]:
    """What a cut sends (its shape) and the task read from it: a linear probe trained on the
    transformed training split, scored on the transformed test split with a 95% interval."""
    from obfaudit.attacks.base import AttackSettings
    from obfaudit.attacks.probes import LinearProbe
    from obfaudit.attacks.uncertainty import Bootstrap
    from obfaudit.transforms import CheckedTransform, apply_transform, to_device

    checked = CheckedTransform(to_device(transform, device), "cut")
    z_train = apply_transform(checked, train.x, device=device)
    z_test = apply_transform(checked, test.x, device=device)
    probe = LinearProbe(AttackSettings(attribute=task, seed=seed))
    probe._fit(z_train, train.labels[task], train.name)
    correct = (probe.infer(z_test) == test.labels[task]).numpy()
    ci = Bootstrap(len(test), seed=seed).interval(correct)
    chance = float(test.labels[task].bincount().max()) / len(test)  # the majority class: what a guess scores
    return tuple(z_test.shape[1:]), {"accuracy": float(correct.mean()), "ci": ci, "chance": chance}


__all__ = ["SplitReport", "cut_row", "safe_node", "split_nodes", "task_utility"]
