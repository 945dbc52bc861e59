"""Results of a run, rebuilt from its stage records: JSON, CSV, figures, findings, report."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from pathlib import Path

from safetensors.torch import load_file

from obfaudit._io import atomic_write_text, read_json, write_json
from obfaudit.attacks.metrics import chance_level, compromise_threshold
from obfaudit.data import COLOUR_NAMES
from obfaudit.experiments.cache import read_records
from obfaudit.report import figures as F

K_COLOURS = len(COLOUR_NAMES)
CSV_COLUMNS = [
    "id",
    "kind",
    "dataset",
    "arch",
    "bottleneck",
    "subject",
    "attack",
    "party",
    "verdict",
    "feature_accuracy",
    "threshold",
    "colour_recovered",
    "mse",
    "psnr_db",
    "ssim",
    "digit_acc_on_reconstructions",
    "obfuscated_test_acc",
    "clean_test_acc",
    "clean_top1",
    "obfuscated_top1",
    "params",
    "flops",
    "size_mb",
    "seconds",
]
#: What the study reports in numbers (the rest of its results are plots).
STUDY_FIGURES = {
    "colornet_mlp_peak": {512: 0.9946, 1024: 0.9940},
    "adversary_floor": 0.50,
    "lightnet_top1": 0.93,
    "densenet_top1": 0.59,
}


def _parse_stage(name: str) -> dict:
    """'audit-colored-mnist-mlp-b512' -> dataset, arch, bottleneck."""
    parts = name.split("-")
    info: dict = {}
    if parts[-1].startswith("b") and parts[-1][1:].isdigit():
        info["bottleneck"] = int(parts[-1][1:])
        info["arch"] = parts[-2]
        info["dataset"] = "-".join(parts[1:-2])
    elif parts[0] in ("infnet", "controls"):
        info["dataset"] = "-".join(parts[1:])
    return info


def collect_experiments(records: dict[str, dict]) -> list[dict]:
    """One flat record per experiment, with its metrics and settings."""
    rows: list[dict] = []
    for name, rec in records.items():
        res, settings, kind = rec.get("result", {}), rec.get("settings", {}), name.split("-")[0]
        info = _parse_stage(name)
        if kind in ("infnet", "obfnet"):
            metrics = {k: v for k, v in res.items() if k not in ("model",)}
            rows.append(
                {
                    "id": name,
                    "kind": kind,
                    **info,
                    "metrics": metrics,
                    "settings": settings,
                    "model": res.get("model"),
                    "seconds": rec.get("seconds"),
                }
            )
        elif kind in ("audit", "controls"):
            for r in res.get("records", []):
                rows.append(
                    {
                        "id": f"{name}/{r['subject']}/{r['attack']}"
                        if kind == "controls"
                        else f"{name}/{r['attack']}",
                        "kind": "attack" if kind == "audit" else "control",
                        **info,
                        "subject": r["subject"],
                        "attack": r["attack"],
                        "party": r["party"],
                        "verdict": r["verdict"],
                        "metrics": r["metrics"],
                        "fit": r.get("fit"),
                        "settings": settings,
                        "seconds": r.get("seconds"),
                    }
                )
        elif kind == "cost":
            for r in res.get("rows", []):
                rows.append(
                    {
                        "id": f"cost/{r['model']}",
                        "kind": "cost",
                        "subject": r["model"],
                        "metrics": r,
                        "settings": settings,
                    }
                )
        elif kind == "scaling":
            rows.append(
                {
                    "id": "scaling/resnet50",
                    "kind": "scaling",
                    "subject": "resnet50",
                    "metrics": {"clean_top1": res["resnet50"]["clean_top1"]},
                    "settings": settings,
                }
            )
            for obf, m in res.get("obfuscators", {}).items():
                rows.append(
                    {
                        "id": f"scaling/{obf}",
                        "kind": "scaling",
                        "subject": obf,
                        "metrics": m,
                        "settings": settings,
                    }
                )
    return rows


def _csv_row(exp: dict) -> dict:
    m = exp.get("metrics", {})
    row = {c: exp.get(c, m.get(c)) for c in CSV_COLUMNS}
    row["seconds"] = exp.get("seconds")
    return {k: ("" if v is None else v) for k, v in row.items()}


def write_csv(path: Path, experiments: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for e in experiments:
        w.writerow(_csv_row(e))
    atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------- series


def attack_series(exps: list[dict], dataset: str, attack: str, key: str = "feature_accuracy") -> dict:
    """{arch: (bottlenecks, values)} of one attack's metric across the sweep."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    pts = sorted(
        (e["arch"], e["bottleneck"], e["metrics"].get(key))
        for e in exps
        if e["kind"] == "attack"
        and e.get("dataset") == dataset
        and e["attack"] == attack
        and e["metrics"].get(key) is not None
    )
    for arch, n, v in pts:
        out.setdefault(arch, ([], []))
        out[arch][0].append(n)
        out[arch][1].append(v)
    return out


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman rank correlation (ties averaged), nan for fewer than 3 points."""
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(ys)) < 2:
        return float("nan")
    return float(spearmanr(xs, ys).statistic)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def findings(exps: list[dict]) -> list[dict]:
    """The study's qualitative claims, each checked against this run's numbers."""
    thr, chance = compromise_threshold(K_COLOURS), chance_level(K_COLOURS)
    out = []
    color = attack_series(exps, "colored-mnist", "colornet")
    if color:
        best = max(max(v) for _, v in color.values())
        worst = min(min(v) for _, v in color.values())
        out.append(
            {
                "claim": "Colour leaks: the server's ColorNet reads colour from obfuscated images above the "
                f"{100 * thr:.0f}% threshold",
                "reproduced": best > thr,
                "evidence": f"ColorNet F_a from {_fmt(worst)} to {_fmt(best)} across all ObfNets "
                f"(chance {_fmt(chance)}).",
            }
        )
        for arch, (ns, fa) in color.items():
            rho = spearman(ns, fa)
            out.append(
                {
                    "claim": f"F_a grows with the bottleneck N (ObfNet-{arch.upper()})",
                    "reproduced": None if math.isnan(rho) else rho > 0.5,
                    "evidence": f"Spearman rank correlation of N and ColorNet F_a: {rho:+.2f}; "
                    f"F_a {_fmt(fa[0])} at N={ns[0]}, {_fmt(fa[-1])} at N={ns[-1]}.",
                }
            )
        mlp = dict(zip(*color["mlp"], strict=True)) if "mlp" in color else {}
        if mlp:
            study = STUDY_FIGURES["colornet_mlp_peak"]
            ours = ", ".join(f"N={n}: {_fmt(mlp.get(n))} (study {_fmt(v)})" for n, v in study.items())
            near = all(n in mlp and abs(mlp[n] - v) <= 0.05 for n, v in study.items())
            out.append(
                {
                    "claim": "ColorNet peaks near 99.5% on MLP ObfNets with N = 512 and 1024",
                    "reproduced": near if all(n in mlp for n in study) else None,
                    "evidence": ours,
                }
            )
    adv = {a: attack_series(exps, "colored-mnist", a) for a in ("noisynet", "pathnet")}
    if any(adv.values()):
        parts, best_all = [], 0.0
        for a, series in adv.items():
            for arch, (ns, fa) in series.items():
                i = max(range(len(fa)), key=fa.__getitem__)
                parts.append(f"{a} {arch.upper()}: best {_fmt(fa[i])} at N={ns[i]}, worst {_fmt(min(fa))}")
                best_all = max(best_all, fa[i])
        out.append(
            {
                "claim": f"The adversary, without the training data, reads colour above {100 * thr:.0f}% "
                "(the study: above 50%)",
                "reproduced": best_all > thr,
                "evidence": "; ".join(parts) + ".",
            }
        )
    for e in exps:
        if e["kind"] == "attack" and e["attack"] == "tsne":
            emb = e["metrics"]["embedding"]
            ok = emb["knn_digit_acc"] > 0.8 and emb["knn_colour_acc_within_digit"] > thr
            out.append(
                {
                    "claim": f"t-SNE of ObfNet-{e['arch'].upper()} (N={e['bottleneck']}) outputs shows digit "
                    "clusters with colour sub-clusters",
                    "reproduced": ok,
                    "evidence": f"in the 2-D embedding, k-NN digit accuracy {_fmt(emb['knn_digit_acc'])}, k-NN "
                    f"colour accuracy within each digit {_fmt(emb['knn_colour_acc_within_digit'])} "
                    f"(colour silhouette within digit {emb['silhouette_colour_within_digit']:+.2f}).",
                }
            )
    rec = attack_series(exps, "colored-mnist", "recnet", "colour_recovered")
    if "mlp" in rec:
        ns, vals = rec["mlp"]
        out.append(
            {
                "claim": "RecNet reconstructs the digit colour when the bottleneck is large",
                "reproduced": vals[-1] > 0.9,
                "evidence": f"colour read from reconstructions: {_fmt(vals[0])} at N={ns[0]}, "
                f"{_fmt(vals[-1])} at N={ns[-1]}.",
            }
        )
    return out


# ----------------------------------------------------------------------------- figures


def _artifacts(run_dir: Path, exp_stage: dict) -> dict:
    path = run_dir / exp_stage["result"].get("artifacts", "-")
    try:
        return load_file(str(path))
    except Exception:  # noqa: BLE001 - a missing artifact only leaves its figure out
        return {}


def make_figures(run_dir: Path, records: dict[str, dict], exps: list[dict]) -> dict[str, dict]:
    """Every figure the data allows; {file: {"title", "reading"}} in report order."""
    figs: dict[str, dict] = {}
    fdir = run_dir / "figures"
    thr, chance = compromise_threshold(K_COLOURS), chance_level(K_COLOURS)
    for fig_id, ds, arch in (
        ("fig7", "mnist", "mlp"),
        ("fig8", "colored-mnist", "mlp"),
        ("fig8b", "colored-mnist", "cnn"),
    ):
        stages = sorted(
            (
                (_parse_stage(n)["bottleneck"], r)
                for n, r in records.items()
                if n.startswith(f"audit-{ds}-{arch}-b")
            ),
            key=lambda t: t[0],
        )
        if not stages:
            continue
        rows, labels = [], []
        for n, rec in stages:
            a = _artifacts(run_dir, rec)
            if not rows and "originals" in a:
                rows.append(a["originals"])
                labels.append("original")
            if "transformed" in a and "reconstructions" in a:
                rows += [a["transformed"], a["reconstructions"]]
                labels += [f"N={n} obfuscated", f"N={n} RecNet"]
        if len(rows) < 3:
            continue
        name = f"{fig_id}_{ds}_{arch}_reconstructions.png"
        F.image_rows(
            rows,
            fdir / name,
            row_labels=labels,
            title=f"{fig_id}: {ds} originals, ObfNet-{arch.upper()} outputs and RecNet reconstructions",
        )
        rec = attack_series(exps, ds, "recnet", "ssim").get(arch)
        reading = ""
        if rec:
            reading = (
                f"RecNet's SSIM to the originals goes from {rec[1][0]:.2f} at N={rec[0][0]} to "
                f"{rec[1][-1]:.2f} at N={rec[0][-1]}: "
            )
            reading += (
                "larger bottlenecks leak more of the image."
                if rec[1][-1] > rec[1][0]
                else "reconstruction does not improve with N here."
            )
        col = attack_series(exps, ds, "recnet", "colour_recovered").get(arch)
        if col:
            reading += (
                f" The colour read from reconstructions is right for {_fmt(col[1][-1])} at N={col[0][-1]}."
            )
        figs[name] = {"title": f"{fig_id}: reconstructions ({ds}, ObfNet-{arch.upper()})", "reading": reading}

    color = attack_series(exps, "colored-mnist", "colornet")
    if color:
        name = "fig9_colornet_fa.png"
        F.fa_vs_bottleneck(
            {f"ObfNet-{a.upper()}": v for a, v in color.items()},
            fdir / name,
            chance=chance,
            threshold=thr,
            title="fig9: server's ColorNet F_a vs bottleneck",
        )
        lo = min((min(v), a) for a, (_, v) in color.items())
        hi = max((max(v), a) for a, (_, v) in color.items())
        figs[name] = {
            "title": "fig9: ColorNet feature accuracy",
            "reading": f"Every point above the dashed line is a compromised ObfNet. F_a ranges from {_fmt(lo[0])} "
            f"(ObfNet-{lo[1].upper()}) to {_fmt(hi[0])} (ObfNet-{hi[1].upper()}); chance is {_fmt(chance)}.",
        }
    for sub, attack in (("a", "noisynet"), ("b", "pathnet")):
        series = attack_series(exps, "colored-mnist", attack)
        if not series:
            continue
        name = f"fig10{sub}_{attack}_fa.png"
        F.fa_vs_bottleneck(
            {f"ObfNet-{a.upper()}": v for a, v in series.items()},
            fdir / name,
            chance=chance,
            threshold=thr,
            title=f"fig10{sub}: adversary's {attack} F_a vs bottleneck",
        )
        above = sum(f > thr for _, v in series.values() for f in v)
        total = sum(len(v) for _, v in series.values())
        best = max(max(v) for _, v in series.values())
        figs[name] = {
            "title": f"fig10{sub}: {attack} (adversary, proxy data only)",
            "reading": f"Trained only on its own {attack.removesuffix('net')} images, the adversary exceeds the "
            f"{100 * thr:.0f}% threshold on {above} of {total} ObfNets (best {_fmt(best)}).",
        }
    tsne_stages = [
        (n, r)
        for n, r in sorted(records.items())
        if n.startswith("audit-") and any(x["attack"] == "tsne" for x in r["result"].get("records", []))
    ]
    for i, (n_, rec) in enumerate(tsne_stages):
        a = _artifacts(run_dir, rec)
        if "embedding" not in a:
            continue
        info = _parse_stage(n_)
        name = f"fig11{'abcdefgh'[min(i, 7)]}_tsne_{info['arch']}_b{info['bottleneck']}.png"
        F.tsne_figure(
            a["embedding"].numpy(),
            a["embedding_digit"].numpy(),
            a["embedding_colour"].numpy(),
            fdir / name,
            title=f"fig11: t-SNE (perplexity 15) of ObfNet-{info['arch'].upper()} "
            f"(N={info['bottleneck']}) outputs on Colored-MNIST test images",
        )
        tsne = next(r for r in rec["result"]["records"] if r["attack"] == "tsne")["metrics"]
        emb, raw = tsne["embedding"], tsne["raw"]
        figs[name] = {
            "title": f"fig11: t-SNE, ObfNet-{info['arch'].upper()} N={info['bottleneck']}",
            "reading": f"k-NN finds the digit for {_fmt(emb['knn_digit_acc'])} and, within each digit, the colour for "
            f"{_fmt(emb['knn_colour_acc_within_digit'])} of points in the embedding "
            f"({_fmt(raw['knn_colour_acc_within_digit'])} in the raw obfuscated space; chance {_fmt(chance)}).",
        }
    points = []
    for e in exps:
        if e["kind"] == "obfnet" and e.get("dataset") == "colored-mnist":
            fas = [
                x["metrics"].get("feature_accuracy")
                for x in exps
                if x["kind"] == "attack"
                and x.get("dataset") == "colored-mnist"
                and x.get("arch") == e["arch"]
                and x.get("bottleneck") == e["bottleneck"]
                and x["attack"] in ("colornet", "noisynet", "pathnet")
            ]
            fas = [f for f in fas if f is not None]
            if fas:
                points.append(
                    {
                        "arch": e["arch"],
                        "bottleneck": e["bottleneck"],
                        "fa": max(fas),
                        "utility": e["metrics"]["obfuscated_test_acc"],
                    }
                )
    if points:
        name = "fig_privacy_utility.png"
        F.privacy_utility(points, fdir / name, chance=chance, threshold=thr)
        private = [p for p in points if p["fa"] <= thr]
        figs[name] = {
            "title": "beyond the study: privacy-utility trade-off",
            "reading": f"{len(private)} of {len(points)} ObfNets stay at or below the threshold on every colour attack"
            + (
                f"; the most useful of them keeps {_fmt(max(p['utility'] for p in private))} digit accuracy."
                if private
                else "; none gives privacy at any utility."
            ),
        }
    scaling = records.get("scaling", {}).get("result", {})
    if scaling.get("figure") and (run_dir / scaling["figure"]).exists():
        ob = scaling["obfuscators"]
        figs[Path(scaling["figure"]).name] = {
            "title": "fig12: LightNet and DenseNet outputs (scaling study)",
            "reading": f"ResNet50 top-1: clean {_fmt(scaling['resnet50']['clean_top1'])}, through LightNet "
            f"{_fmt(ob['lightnet']['obfuscated_top1'])}, through DenseNet {_fmt(ob['densenet']['obfuscated_top1'])} "
            f"(study: 93% and 59%).",
        }
    return figs


def write_outputs(run_dir: str | Path) -> dict:
    """Rebuild results.json, results.csv, the figures and report.html of a run directory."""
    from obfaudit.report.html import write_report

    run_dir = Path(run_dir)
    records = read_records(run_dir)
    exps = collect_experiments(records)
    config = read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
    figs = make_figures(run_dir, records, exps)
    found = findings(exps)
    results = {
        "obfaudit_results": 1,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "threshold": compromise_threshold(K_COLOURS),
        "chance": chance_level(K_COLOURS),
        "findings": found,
        "figures": figs,
        "experiments": exps,
    }
    write_json(run_dir / "results.json", results)
    write_csv(run_dir / "results.csv", exps)
    write_report(run_dir, results, records)
    return {"figures": [f"figures/{f}" for f in figs], "findings": found}
