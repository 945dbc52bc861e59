"""The study's claims, each checked against this run: against the compromise line (twice
chance, rounded up) and, where the study states a number, against that number too."""

from __future__ import annotations

import math
from dataclasses import dataclass

from obfaudit.attacks.auditor import STUDY_ATTACKS
from obfaudit.data import COLOUR
from obfaudit.records import Experiment, Kind
from obfaudit.report.collect import attack_series, attacks_by_subject, compare, strongest_by
from obfaudit.threat import Output, Party

#: What the study reports in numbers (the rest of its results are plots).
STUDY_NUMBERS = {
    "colornet_mlp_peak": {512: 0.9946, 1024: 0.9940},
    "adversary_floor": 0.50,
    "lightnet_top1": 0.93,
    "densenet_top1": 0.59,
}
DATASET = "colored-mnist"


@dataclass
class Finding:
    """One claim of the study and what this run says about it."""

    claim: str
    evidence: str
    line_check: bool | None = None
    """Holds against the compromise line (None: the claim is not about the line, or no data)."""
    study_number: str | None = None
    """The study's own figure for the claim, if it gives one."""
    study_check: bool | None = None
    """Holds against the study's own figure (None: the study gives none)."""

    @property
    def reproduced(self) -> bool | None:
        """True when every check that applies holds; None when none applies."""
        checks = [c for c in (self.line_check, self.study_check) if c is not None]
        return all(checks) if checks else None


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman rank correlation (ties averaged), nan for fewer than 3 points."""
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(ys)) < 2:
        return float("nan")
    return float(spearmanr(xs, ys).statistic)


def pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def findings(
    exps: list[Experiment],
    *,
    threshold: float,
    chance: float,
    attribute: str = COLOUR,
    dataset: str = DATASET,
    task: str = "digit",
) -> list[Finding]:
    """Each claim of the study that this run has the data for, checked (on ``dataset``'s ObfNets)."""
    thr, out = threshold, []
    line = f"{100 * thr:.0f}%"
    color = attack_series(exps, dataset, "colornet")
    if color:
        best = max(max(v) for _, v in color.values())
        worst = min(min(v) for _, v in color.values())
        out.append(
            Finding(
                f"{attribute.capitalize()} leaks: the server's ColorNet reads it from obfuscated images above "
                f"the {line} line",
                f"ColorNet F_a from {pct(worst)} to {pct(best)} across all ObfNets (chance {pct(chance)}).",
                line_check=best > thr,
            )
        )
        for arch, (ns, fa) in color.items():
            rho = spearman(ns, fa)
            out.append(
                Finding(
                    f"F_a grows with the bottleneck N (ObfNet-{arch.upper()})",
                    "Spearman rank correlation of N and ColorNet F_a: "
                    + ("n/a (fewer than 3 bottlenecks)" if math.isnan(rho) else f"{rho:+.2f}")
                    + "; "
                    f"F_a {pct(fa[0])} at N={ns[0]}, {pct(fa[-1])} at N={ns[-1]}.",
                    line_check=None if math.isnan(rho) else rho > 0.5,
                )
            )
        mlp = dict(zip(*color["mlp"], strict=True)) if "mlp" in color else {}
        study = STUDY_NUMBERS["colornet_mlp_peak"]
        if all(n in mlp for n in study):
            out.append(
                Finding(
                    "ColorNet peaks near 99.5% on MLP ObfNets with N = 512 and 1024",
                    ", ".join(f"N={n}: {pct(mlp[n])} (study {pct(v)})" for n, v in study.items()) + ".",
                    line_check=all(mlp[n] > thr for n in study),
                    study_number=", ".join(f"{pct(v)} at N={n}" for n, v in study.items())
                    + " (within 5 points counts)",
                    study_check=all(abs(mlp[n] - v) <= 0.05 for n, v in study.items()),
                )
            )
    adv = {a: attack_series(exps, dataset, a) for a in ("noisynet", "pathnet")}
    if any(adv.values()):
        parts, best_all = [], 0.0
        for a, series in adv.items():
            for arch, (ns, fa) in series.items():
                i = max(range(len(fa)), key=fa.__getitem__)
                parts.append(f"{a} {arch.upper()}: best {pct(fa[i])} at N={ns[i]}, worst {pct(min(fa))}")
                best_all = max(best_all, fa[i])
        floor = STUDY_NUMBERS["adversary_floor"]
        out.append(
            Finding(
                f"The adversary, without the training data, reads {attribute} from obfuscated images",
                "; ".join(parts) + ".",
                line_check=best_all > thr,
                study_number=f"above {pct(floor)}",
                study_check=best_all > floor,
            )
        )
    for e in exps:
        if e.kind is Kind.ATTACK and e.output is Output.EMBEDDING and e.dataset == dataset:
            emb = e.metrics["embedding"]
            within = emb["knn_attribute_acc_within_class"]
            sil = emb["silhouette_attribute_within_class"]
            out.append(
                Finding(
                    f"t-SNE of ObfNet-{e.arch.upper()} (N={e.bottleneck}) outputs shows {task} clusters with "
                    f"{attribute} sub-clusters",
                    f"in the 2-D embedding, k-NN {task} accuracy {pct(emb['knn_class_acc'])}, k-NN {attribute} "
                    f"accuracy within each {task} {pct(within)} (silhouette within {task} "
                    + ("n/a" if sil is None else f"{sil:+.2f}")
                    + f"); {task} clusters need k-NN {task} accuracy above 80%.",
                    line_check=(emb["knn_class_acc"] or 0) > 0.8 and (within or 0) > thr,
                )
            )
    rec = attack_series(exps, dataset, "recnet", "attribute_recovered")
    if "mlp" in rec:
        ns, vals = rec["mlp"]
        out.append(
            Finding(
                f"RecNet reconstructs the {task} {attribute} when the bottleneck is large",
                f"{attribute} read from reconstructions: {pct(vals[0])} at N={ns[0]}, {pct(vals[-1])} at N={ns[-1]} "
                "(counts when above 90% at the largest N).",
                line_check=vals[-1] > 0.9,
            )
        )
    return out


def beyond_study(exps: list[Experiment], dataset: str = DATASET) -> list[dict]:
    """Per ObfNet where an attack beyond the study's ran: the strongest study attack and the
    strongest new one by F_a (overall and the eavesdropper's), and RecNet's SSIM against the
    best new reconstruction."""
    rows = []
    for (arch, n), on in sorted(attacks_by_subject(exps, dataset).items()):
        study = [e for a, e in on.items() if a in STUDY_ATTACKS]
        new = [e for a, e in on.items() if a not in STUDY_ATTACKS]
        if not new:
            continue
        adversary = [e for e in new if e.party is Party.ADVERSARY]
        rows.append(
            {
                "arch": arch,
                "bottleneck": n,
                "study": strongest_by(study, "feature_accuracy"),
                "new": strongest_by(new, "feature_accuracy"),
                "study_adversary": strongest_by(
                    [e for e in study if e.party is Party.ADVERSARY], "feature_accuracy"
                ),
                "new_adversary": strongest_by(adversary, "feature_accuracy"),
                "recnet": on.get("recnet")
                if (on.get("recnet") and on["recnet"].metrics.ssim is not None)
                else None,
                "new_image": strongest_by(new, "ssim"),
            }
        )
    return rows


def beyond_summary(rows: list[dict]) -> str:
    """One sentence per comparison: on how many ObfNets a new attack beats the study's."""
    parts = []
    for old, new, metric, what in (
        ("study", "new", "feature_accuracy", "the strongest new attack beats the study's strongest by F_a"),
        (
            "study_adversary",
            "new_adversary",
            "feature_accuracy",
            "the eavesdropper's strongest new attack beats NoisyNet and PathNet",
        ),
        ("recnet", "new_image", "ssim", "the best new reconstruction beats the server's RecNet by SSIM"),
    ):
        pairs = [(r, compare(r[new], r[old], metric)) for r in rows if r[old] and r[new]]
        if not pairs:
            continue
        won = [f"{r['arch'].upper()}-{r['bottleneck']} ({r[new].attack})" for r, c in pairs if c == "beats"]
        parts.append(
            f"On {len(won)} of {len(pairs)} ObfNet{'' if len(pairs) == 1 else 's'} {what}"
            + (f": {', '.join(won)}." if won else ".")
        )
    return " ".join(parts)
