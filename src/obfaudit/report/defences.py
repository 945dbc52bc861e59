"""The defences section: each defended obfuscator's utility against its worst-case leakage.

For every defended ObfNet (trained by the ``defences`` preset, :mod:`obfaudit.defences`):
its utility (InfNet digit accuracy on what it sends), the strongest attack on it (the
highest lower bound of F_a over every attack, each retrained on this obfuscator's outputs),
the best reconstruction and what the InfNet reads from it, and whether it is on the Pareto
frontier (no other obfuscator is both at least as useful and at most as leaky).
"""

from __future__ import annotations

from pathlib import Path

from obfaudit.records import NOT_COMPROMISED, Experiment, Kind
from obfaudit.report.collect import calibrated_verdict, strongest_by

DATASET = "colored-mnist"
UTILITY_MARGIN = 0.03
"""The target: a defence within 3 points of the undefended ObfNet's utility."""


def defence_rows(exps: list[Experiment], dataset: str = DATASET) -> list[dict]:
    """One row per defended ObfNet: utility, worst case, best reconstruction, Pareto flag."""
    attacks: dict[str, list[Experiment]] = {}
    for e in exps:
        if e.kind is Kind.ATTACK and e.dataset == dataset and e.defence:
            attacks.setdefault(f"{e.arch}-{e.bottleneck}-{e.defence}", []).append(e)
    rows = []
    for o in exps:
        if o.kind is not Kind.OBFNET or o.dataset != dataset or not o.defence:
            continue
        on = attacks.get(f"{o.arch}-{o.bottleneck}-{o.defence}", [])
        worst = strongest_by(on, "feature_accuracy")
        image = strongest_by(on, "ssim")
        d = o.metrics.get("defence") or {"name": o.defence, "strength": 0.0, "strength_name": ""}
        rows.append(
            {
                "arch": o.arch,
                "bottleneck": o.bottleneck,
                "defence": d["name"],
                "strength": d["strength"],
                "strength_name": d.get("strength_name", ""),
                "label": o.defence,
                "utility": o.metrics.get("obfuscated_test_acc"),
                "worst": worst,
                "fa": worst.metrics.feature_accuracy if worst else None,
                "fa_ci": worst.metrics.interval("feature_accuracy") if worst else None,
                "image": image,
                "verdict": calibrated_verdict(on, exps, dataset),
                "in_training_acc": d.get("in_training_acc"),
                "fresh_acc": (d.get("fresh_attacker") or {}).get("test_acc"),
            }
        )
    _mark_pareto(rows)
    for r in rows:
        # passes: every attack's interval below the line (the subject's verdict), not only the strongest's
        r["passes"] = r["defence"] != "none" and r["verdict"] == NOT_COMPROMISED
        base = next(
            (
                b
                for b in rows
                if b["defence"] == "none" and (b["arch"], b["bottleneck"]) == (r["arch"], r["bottleneck"])
            ),
            None,
        )
        r["utility_drop"] = (
            base["utility"] - r["utility"] if base and None not in (base["utility"], r["utility"]) else None
        )
    return sorted(
        rows, key=lambda r: (r["arch"], r["bottleneck"], r["defence"] != "none", r["defence"], r["strength"])
    )


def _mark_pareto(rows: list[dict]) -> None:
    """A row is Pareto-optimal when no other is at least as useful and at most as leaky, one strictly."""
    scored = [r for r in rows if r["fa"] is not None and r["utility"] is not None]
    for r in rows:
        r["pareto"] = r in scored and not any(
            q["utility"] >= r["utility"]
            and q["fa"] <= r["fa"]
            and (q["utility"] > r["utility"] or q["fa"] < r["fa"])
            for q in scored
        )


def target_reading(rows: list[dict], threshold: float) -> str:
    """Whether a defence keeps utility within 3 points while its worst-case F_a interval lies
    below the line; if none does, the closest one and what it lacks."""
    if not rows:
        return ""
    # below the line: every attack's interval under it (the subject's verdict), not only the strongest's
    below = [r for r in rows if r["defence"] != "none" and r["verdict"] == NOT_COMPROMISED]
    good = [r for r in below if r["utility_drop"] is not None and r["utility_drop"] <= UTILITY_MARGIN]
    if good:
        best = min(good, key=lambda r: r["utility_drop"])
        return (
            f"{len(good)} defended ObfNet(s) keep utility within {100 * UTILITY_MARGIN:.0f} points of the "
            f"undefended one while every attack's F_a interval lies below the {100 * threshold:.0f}% line; the "
            f"best: ObfNet-{best['arch'].upper()}({best['bottleneck']}) {best['label']}, utility "
            f"{100 * best['utility']:.1f}% ({_against(best['utility_drop'])}), worst case "
            f"{best['worst'].attack} F_a {100 * best['fa']:.1f}% [{100 * best['fa_ci'][0]:.1f}, "
            f"{100 * best['fa_ci'][1]:.1f}]."
        )
    if below:
        best = max(below, key=lambda r: r["utility"] or 0.0)
        lost = (
            f"{100 * best['utility_drop']:.1f} points under the undefended one"
            if best["utility_drop"] is not None
            else "no undefended ObfNet of that N to compare with"
        )
        return (
            f"No defence keeps every attack below the {100 * threshold:.0f}% line within "
            f"{100 * UTILITY_MARGIN:.0f} points of utility. Below the line, the most useful is "
            f"ObfNet-{best['arch'].upper()}({best['bottleneck']}) {best['label']}: utility "
            f"{100 * best['utility']:.1f}%, {lost}."
        )
    candidates = [r for r in rows if r["defence"] != "none" and r["fa"] is not None]
    if not candidates:
        return "No defended ObfNet was audited."
    best = min(candidates, key=lambda r: r["fa_ci"][1] if r["fa_ci"] else r["fa"])
    return (
        f"No defence brings the worst-case F_a interval below the {100 * threshold:.0f}% line. The closest: "
        f"ObfNet-{best['arch'].upper()}({best['bottleneck']}) {best['label']}, {best['worst'].attack} F_a "
        f"{100 * best['fa']:.1f}% at utility {100 * best['utility']:.1f}%."
    )


def _against(drop: float) -> str:
    """A utility difference to the undefended ObfNet in words: 2.1 points below, 0.9 points above."""
    return f"{abs(100 * drop):.1f} points {'below' if drop > 0 else 'above'} the undefended one"


def passing_reading(rows: list[dict], threshold: float) -> str:
    """Each point that passes (every attack's interval below the line) and what it cost in utility."""
    passing = [r for r in rows if r.get("passes")]
    if not passing:
        return f"No defended ObfNet passes: none has every attack's interval below the {100 * threshold:.0f}% line."
    parts = [
        f"ObfNet-{r['arch'].upper()}({r['bottleneck']}) {r['label']}: utility {100 * r['utility']:.1f}%"
        + (f", {_against(r['utility_drop'])}" if r["utility_drop"] is not None else "")
        for r in passing
    ]
    return (
        f"{len(passing)} point(s) pass, every attack's interval below the {100 * threshold:.0f}% line (starred in "
        f"the figure): " + "; ".join(parts) + "."
    )


def adversary_reading(rows: list[dict]) -> str:
    """What the co-trained adversaries read beside a fresh attacker, per adversarially defended ObfNet."""
    parts = [
        f"ObfNet-{r['arch'].upper()}({r['bottleneck']}) {r['label']}: {100 * r['in_training_acc']:.1f}% in training, "
        f"{100 * r['fresh_acc']:.1f}% fresh"
        for r in rows
        if r.get("in_training_acc") is not None and r.get("fresh_acc") is not None
    ]
    if not parts:
        return ""
    return (
        "The adversaries trained beside each ObfNet read the attribute on their last epoch's training batches, a "
        "classifier trained afresh on what the finished ObfNet sends reads it on the test images: "
        + "; ".join(parts)
        + "."
    )


def defence_summary(rows: list[dict]) -> str:
    """Per defence, its most private point: worst-case F_a, the utility it cost, and what the
    InfNet still reads from the best reconstruction (does the digit survive?)."""
    parts = []
    for name in dict.fromkeys(r["defence"] for r in rows if r["defence"] != "none"):
        own = [r for r in rows if r["defence"] == name and r["fa"] is not None]
        if not own:
            continue
        r = min(own, key=lambda r: r["fa"])
        digit = r["image"].metrics.get("digit_acc_on_reconstructions") if r["image"] else None
        parts.append(
            f"{name}: at its most private (N={r['bottleneck']}, {r['strength_name']} = {r['strength']:g}) the "
            f"worst case is {r['worst'].attack} at {100 * r['fa']:.1f}%"
            + (
                f" for {100 * r['utility_drop']:.1f} points of utility"
                if r["utility_drop"] is not None
                else ""
            )
            + (
                f"; the InfNet reads the digit from {100 * digit:.1f}% of the best reconstructions"
                if digit is not None
                else ""
            )
            + "."
        )
    return " ".join(parts)


def frontier_figure(rows: list[dict], path: Path, *, chance: float, threshold: float) -> Path:
    """Utility against worst-case F_a (with its interval) per defended ObfNet; the Pareto
    frontier joined and circled."""
    from obfaudit.report.figures import defence_frontier

    return defence_frontier(rows, path, chance=chance, threshold=threshold)
