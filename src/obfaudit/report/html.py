"""report.html: one self-contained page (figures embedded), rendered from a packaged
jinja2 template (``templates/report.html.j2``) with the run's typed results."""

from __future__ import annotations

import base64
import math
from pathlib import Path

from obfaudit._io import atomic_write_text
from obfaudit.cost import format_size, human
from obfaudit.records import Experiment, Kind
from obfaudit.report.collect import (
    attacks_by_subject,
    attacks_present,
    baselines_by_dataset,
    calibrated_verdict,
    compare,
    skipped_attacks,
    worst_case,
)
from obfaudit.report.findings import Finding, beyond_study, beyond_summary
from obfaudit.threat import Output

SECTIONS = (
    ("settings", "Data and settings"),
    ("threat-model", "Threat model"),
    ("findings", "The study's findings, checked"),
    ("verdicts", "Verdicts"),
    ("beyond", "Beyond the study"),
    ("defences", "Defences"),
    ("controls", "Controls"),
    ("figures", "Figures"),
    ("cost", "Table 1: cost at 224x224x3"),
    ("scaling", "Scaling study"),
    ("not-run", "Not run"),
    ("run", "Run"),
)


def pct(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.1f}%"


def pct_ci(v, ci) -> str:
    """A percentage with its 95% interval, e.g. ``34.0% [31.1, 36.9]``."""
    if not ci or v is None:
        return pct(v)
    return f"{pct(v)} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def num_ci(v, ci, fmt: str = ".3f") -> str:
    if not ci or v is None:
        return num(v, fmt)
    return f"{num(v, fmt)} [{format(ci[0], fmt)}, {format(ci[1], fmt)}]"


def num(v, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("obfaudit.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, num=num, human=human, size=format_size)
    return env


def _score_cells(e: Experiment | None) -> list[str]:
    """An attack's cells in a verdict table: F_a, or SSIM and the attribute read back."""
    if e is None:
        return ["-"]
    m = e.metrics
    if e.output is Output.IMAGE:
        cells = [num_ci(m.ssim, m.interval("ssim"))]
        if "attribute_recovered" in m:
            cells.append(pct_ci(m["attribute_recovered"], m.interval("feature_accuracy")))
        return cells
    return [pct_ci(m.feature_accuracy, m.interval("feature_accuracy"))]


def _header(attack: str, output: str, attribute: str | None) -> list[str]:
    if output == Output.IMAGE:
        return [f"{attack} SSIM"] + ([f"{attack} {attribute}"] if attribute else [])
    return [f"{attack} F_a"]


WORST_HEADERS = {"feature_accuracy": "strongest F_a", "ssim": "best SSIM"}


def _worst_cells(on: dict[str, Experiment], columns: list[tuple[str, str]]) -> list[str]:
    """Per (party, metric) column: the strongest attack of that party on this subject and its score."""
    worst = worst_case(on.values())
    return [_cell(worst.get(party, {}).get(metric), metric) for party, metric in columns]


def verdict_tables(exps: list[Experiment]) -> list[dict]:
    """Per dataset, a row per ObfNet: utility, then the strongest attack of each party (the
    worst case, first), then every attack's score."""
    tables = []
    present = dict.fromkeys(e.dataset for e in exps if e.kind is Kind.OBFNET)
    for ds in sorted(present, key=lambda d: (d != "colored-mnist", d != "mnist", d)):
        obfs = sorted(
            (e for e in exps if e.kind is Kind.OBFNET and e.dataset == ds),
            key=lambda e: (e.arch, e.bottleneck),
        )
        if not obfs:
            continue
        by_subject = attacks_by_subject(exps, ds)
        outputs = {e.attack: e.output for e in exps if e.kind is Kind.ATTACK and e.dataset == ds}
        attacks = [a for a in attacks_present(exps) if a in outputs]
        has_attr = next(
            (e.attribute for e in exps if e.kind is Kind.ATTACK and e.dataset == ds and e.attribute), None
        )
        ran = [e for e in exps if e.kind is Kind.ATTACK and e.dataset == ds]
        worst = [
            (party, metric)
            for party, best in worst_case(ran).items()
            for metric, e in best.items()
            if e is not None
        ]
        header = [f"{party}: {WORST_HEADERS[metric]}" for party, metric in worst]
        header += [h for a in attacks for h in _header(a, outputs[a], has_attr)]
        rows = []
        for o in obfs:
            on = by_subject.get((o.arch, o.bottleneck), {})
            cells = _worst_cells(on, worst)
            for a in attacks:
                got = _score_cells(on.get(a))
                cells += got + ["-"] * (len(_header(a, outputs[a], has_attr)) - len(got))
            rows.append(
                {
                    "name": f"ObfNet-{o.arch.upper()}",
                    "bottleneck": o.bottleneck,
                    "clean": pct(o.metrics.get("clean_test_acc")),
                    "utility": pct(o.metrics.get("obfuscated_test_acc")),
                    "cells": cells,
                    "verdict": calibrated_verdict(on.values(), exps, ds),
                }
            )
        tables.append({"dataset": ds, "header": header, "rows": rows, "worst": len(worst)})
    return tables


def _cell(e: Experiment | None, metric: str) -> str:
    if e is None:
        return "-"
    m = e.metrics
    fmt = num_ci if metric == "ssim" else pct_ci
    return f"{e.attack} {fmt(m[metric], m.get(f'{metric}_ci'))}"


def beyond_study_table(exps: list[Experiment], dataset: str = "colored-mnist") -> dict:
    """The report's rows comparing the new attacks with the study's, and a one-line summary."""
    rows = beyond_study(exps, dataset)
    cells = []
    for r in rows:
        row = []
        for old, new, metric in (
            ("study", "new", "feature_accuracy"),
            ("study_adversary", "new_adversary", "feature_accuracy"),
            ("recnet", "new_image", "ssim"),
        ):
            o, n = r[old], r[new]
            row += [_cell(o, metric), _cell(n, metric), compare(n, o, metric) if o and n else "-"]
        cells.append({"name": f"ObfNet-{r['arch'].upper()}", "bottleneck": r["bottleneck"], "cells": row})
    return {"beyond": cells, "beyond_summary": beyond_summary(rows)}


def defence_table(exps: list[Experiment], dataset: str, line: float) -> dict:
    """The defences section's rows (formatted) and its reading against the target (``line``)."""
    from obfaudit.report.defences import (
        adversary_reading,
        defence_rows,
        defence_summary,
        passing_reading,
        target_reading,
    )

    rows = defence_rows(exps, dataset)
    out = []
    for r in rows:
        image = r["image"]
        out.append(
            {
                "name": f"ObfNet-{r['arch'].upper()}",
                "bottleneck": r["bottleneck"],
                "defence": r["defence"],
                "strength": "-" if r["defence"] == "none" else f"{r['strength_name']} = {r['strength']:g}",
                "utility": pct(r["utility"]),
                "drop": "-" if r["utility_drop"] is None else f"{100 * r['utility_drop']:+.1f}",
                "worst": _cell(r["worst"], "feature_accuracy"),
                "image": _cell(image, "ssim"),
                "digit": pct(image.metrics.get("digit_acc_on_reconstructions")) if image else "-",
                "verdict": r["verdict"],
                "pareto": r["pareto"],
                "passes": r["passes"],
                "adversaries": "-"
                if r["in_training_acc"] is None
                else f"{pct(r['in_training_acc'])} / {pct(r['fresh_acc'])}",
            }
        )
    return {
        "rows": out,
        "reading": target_reading(rows, line) if rows else "",
        "passing": passing_reading(rows, line) if rows else "",
        "adversaries": adversary_reading(rows),
        "summary": defence_summary(rows),
    }


def control_rows(exps: list[Experiment]) -> list[dict]:
    rows = []
    for e in exps:
        if e.kind is not Kind.CONTROL:
            continue
        m = e.metrics
        score = (
            f"SSIM {num_ci(m.ssim, m.interval('ssim'))}"
            if e.output is Output.IMAGE and m.feature_accuracy is None
            else pct_ci(m.feature_accuracy, m.interval("feature_accuracy"))
        )
        rows.append(
            {
                "dataset": e.dataset,
                "subject": e.subject,
                "attack": e.attack,
                "party": e.party,
                "score": score,
                "verdict": e.verdict,
            }
        )
    return rows


def threat_model(exps: list[Experiment]) -> list[dict]:
    """The attacks this run scored, by party, with what each needs (from the registry)."""
    from obfaudit.attacks import attacks_table

    present = set(attacks_present(exps))
    return [row for row in attacks_table() if row["attack"] in present]


def _figures(run_dir: Path, figs: dict) -> list[dict]:
    out = []
    for name, meta in figs.items():
        path = run_dir / "figures" / name
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode()
            out.append({**meta, "name": name, "src": f"data:image/png;base64,{data}"})
    return out


def not_run(results: dict, records: dict) -> list[dict]:
    """Parts of the study the plan left out, then attacks skipped for unmet needs."""
    rows = [{"part": n["part"], "reason": n["reason"]} for n in results.get("not_run", [])]
    for what, stages in sorted(skipped_attacks(records).items()):
        attack, why = what.split(": ", 1)
        rows.append({"part": f"attack {attack} on {', '.join(sorted(stages))}", "reason": why})
    return rows


def write_report(
    run_dir: Path, results: dict, exps: list[Experiment], found: list[Finding], records: dict
) -> Path:
    """Write ``run_dir/report.html`` from the run's typed results."""
    cfg = results.get("config", {})
    preset = cfg.get("preset", {})
    scaling = records.get("scaling", {}).get("result")
    cost = [e.metrics for e in exps if e.kind is Kind.COST and "params" in e.metrics]
    stages = set(cfg.get("stages") or records)
    timing = sorted(
        ((n, r.get("seconds", 0)) for n, r in records.items() if n in stages), key=lambda t: -t[1]
    )
    study = [e for e in exps if not e.defence]
    dataset = results.get("dataset", "colored-mnist")
    context = {
        "results": results,
        "cfg": cfg,
        "preset": preset,
        "sections": [
            (anchor, title)
            for anchor, title in SECTIONS
            if anchor not in ("cost", "scaling", "defences")
            or (anchor == "cost" and cost)
            or (anchor == "scaling" and scaling)
            or (anchor == "defences" and any(e.defence for e in exps))
        ],
        "threat_model": threat_model(exps),
        "findings": found,
        "verdict_tables": verdict_tables(study),
        **beyond_study_table(study, dataset),
        "defences": defence_table(exps, dataset, results["threshold"]),
        "controls": control_rows(exps),
        "random_controls": any(
            str(e.subject).startswith("random-weights") for e in exps if e.kind is Kind.CONTROL
        ),
        "figures": _figures(run_dir, results.get("figures", {})),
        "cost": cost,
        "scaling": scaling,
        "not_run": not_run(results, {n: r for n, r in records.items() if n in stages}),
        "timing": timing[:8],
        "judges": [
            {"dataset": e.dataset, "acc": e.metrics.get("clean_test_acc")}
            for e in exps
            if e.kind is Kind.JUDGE
        ],
        "baselines": baselines_by_dataset({n: r for n, r in records.items() if n in stages}),
    }
    page = _environment().get_template("report.html.j2").render(**context)
    path = run_dir / "report.html"
    atomic_write_text(path, page)
    return path
