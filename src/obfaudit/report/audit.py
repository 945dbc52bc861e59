"""The report of ``obfaudit audit``: the verdict per party on the first screen, the strongest
attack of each party, the threat model, then every score with its interval beside the
baselines and controls, and the figures."""

from __future__ import annotations

import base64
from pathlib import Path

from obfaudit._io import atomic_write_text
from obfaudit.attacks.calibration import verdict_with_calibration
from obfaudit.data import COLOUR
from obfaudit.records import AuditDocument, Experiment, Kind, PartyVerdict
from obfaudit.report import figures as F
from obfaudit.report.collect import strongest
from obfaudit.report.html import _environment, num_ci, pct_ci
from obfaudit.threat import PARTIES, Output


def score_text(e: Experiment) -> str:
    m = e.metrics
    parts = []
    if m.feature_accuracy is not None:
        parts.append(f"F_a {pct_ci(m.feature_accuracy, m.interval('feature_accuracy'))}")
    if m.ssim is not None:
        parts.append(f"SSIM {num_ci(m.ssim, m.interval('ssim'))}")
    if m.psnr_db is not None:
        parts.append(f"PSNR {num_ci(m.psnr_db, m.interval('psnr_db'), '.1f')} dB")
    spread = m.repeats.get("feature_accuracy")
    if spread and spread.get("n", 0) > 1:
        parts.append(f"over {spread['n']} seeds {100 * spread['min']:.1f}-{100 * spread['max']:.1f}%")
    return "; ".join(parts) or "-"


def _figures(out: Path, results: dict, exps: list[Experiment], main) -> list[dict]:
    figs = []
    b = results["baselines"]
    scored = [e for e in exps if e.metrics.feature_accuracy is not None]
    if scored:
        path = out / "figures" / "feature_accuracy.png"
        F.fa_bars(
            [
                {
                    "subject": e.subject,
                    "attack": e.attack,
                    "feature_accuracy": e.metrics.feature_accuracy,
                    "ci": e.metrics.interval("feature_accuracy"),
                }
                for e in scored
            ],
            path,
            chance=b["chance"],
            threshold=b["threshold"],
            title=f"{b['attribute']} feature accuracy with 95% intervals",
        )
        figs.append(
            {
                "path": path,
                "title": f"{b['attribute']} read by each attack",
                "reading": "Bars above the dashed line leak the attribute; the whiskers are 95% bootstrap intervals over the test images.",
            }
        )
    images = [r.attack for r in main.records if r.output is Output.IMAGE]
    if images:
        # what is sent is drawn when it is an image batch; a flat vector has no picture
        sent = main.artifacts["transformed"]
        shown = [sent] if sent.dim() == 4 else []
        path = out / "figures" / "reconstructions.png"
        F.image_rows(
            [main.artifacts["originals"], *shown, *(main.artifacts[f"{a}/output"] for a in images)],
            path,
            row_labels=["original", *(["transformed"] if shown else []), *images],
            title=f"reconstructions of {main.subject}",
        )
        figs.append(
            {
                "path": path,
                "title": "reconstructions",
                "reading": "Test images, what is sent (when it is an image), and what each image attack "
                "rebuilt from it.",
            }
        )
    for r in main.records:
        if r.output is Output.EMBEDDING and f"{r.attack}/output" in main.artifacts:
            path = out / "figures" / f"{r.attack}.png"
            a = main.artifacts
            F.tsne_figure(
                a[f"{r.attack}/output"].numpy(),
                a[f"{r.attack}/labels/task"].numpy(),
                a[f"{r.attack}/labels/attribute"].numpy(),
                path,
                title=f"{r.attack} of {main.subject}-transformed test images",
                task_name=results["dataset"]["task"],
                attribute_name=b["attribute"],
                attribute_classes=None if b["attribute"] == COLOUR else b["classes"],
            )
            figs.append(
                {
                    "path": path,
                    "title": f"{r.attack} embedding",
                    "reading": "Neighbours in the embedding of what is sent, coloured by task class and by the attribute.",
                }
            )
    for f in figs:
        f["src"] = "data:image/png;base64," + base64.b64encode(f["path"].read_bytes()).decode()
        f["name"] = f["path"].name
    return figs


def _knowledge(out: Path, knowledge: dict | None) -> dict | None:
    """The --known-pairs curve for the page: its rows formatted, its figure inlined."""
    if not knowledge:
        return None
    figure = out / knowledge["figure"]
    rows = [
        {
            "k": r["k"],
            "who": r["who"],
            "fa": f"{r['fa_attack']}: {pct_ci(r['fa'], r.get('fa_ci'))}" if r.get("fa") is not None else "-",
            "ssim": f"{r['ssim_attack']}: {num_ci(r['ssim'], r.get('ssim_ci'))}"
            if r.get("ssim") is not None
            else "-",
            "verdict": r.get("verdict"),
        }
        for r in knowledge["rows"]
    ]
    src = (
        "data:image/png;base64," + base64.b64encode(figure.read_bytes()).decode()
        if figure.is_file()
        else None
    )
    return {"rows": rows, "reading": knowledge["reading"], "src": src}


def party_verdicts(subject: str, exps: list[Experiment], calibration: dict) -> list[PartyVerdict]:
    """Per party that attacked ``subject``: its verdict (a "not compromised" counted only from attacks
    the identity calibrated), its strongest attack and that attack's score with its interval."""
    mine = [e for e in exps if e.subject == subject]
    parties = []
    for party in PARTIES:
        ran = [e for e in mine if e.party == party]
        if ran:
            top = strongest(ran)
            verdict = verdict_with_calibration(
                [(e.attack, e.verdict) for e in ran], {a: c["calibrated"] for a, c in calibration.items()}
            )
            attack, score = (top.attack, score_text(top)) if top else ("-", "-")
            parties.append(PartyVerdict(party, verdict, attack, score, len(ran)))
    return parties


def write_audit_report(out: Path, document: AuditDocument, exps: list[Experiment], main) -> Path:
    """Write ``out/report.html`` for one audit."""
    from obfaudit.attacks import attacks_table

    results = document.to_dict()  # what the page shows, as results.json holds it
    mine = document.rows(document.subject)
    calibration = document.calibration
    parties = document.parties
    controls = sorted({e.subject for e in exps if e.kind is Kind.CONTROL})
    attacks = [a for a in dict.fromkeys(e.attack for e in exps)]
    table = [
        {
            "attack": a,
            "party": next(e.party for e in exps if e.attack == a),
            "cells": [
                score_text(e) if e else "-"
                for e in (
                    next((x for x in exps if x.attack == a and x.subject == s), None)
                    for s in [results["subject"], *controls]
                )
            ],
            "verdict": next((e.verdict for e in mine if e.attack == a), None),
            "calibration": calibration.get(a),
        }
        for a in attacks
    ]
    page = (
        _environment()
        .get_template("audit.html.j2")
        .render(
            results=results,
            parties=parties,
            threat_model=[row for row in attacks_table() if row["attack"] in attacks],
            table=table,
            controls=controls,
            figures=_figures(out, results, exps, main),
            knowledge=_knowledge(out, document.knowledge),
        )
    )
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
