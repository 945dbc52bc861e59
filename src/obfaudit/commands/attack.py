"""``obfaudit attack``: the old name of ``obfaudit audit --attack NAME ...``, kept for one release.

It runs the same audit (:mod:`.audit`) and, besides the audit's files, writes the outputs the
command used to write: ``attack.json`` (every record, the controls' too), ``attack.csv`` and
its figures at the top of ``--out``.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

from obfaudit.commands._base import Command, Interface, Progress, Result, json_option, pick
from obfaudit.commands._options import add, attacks_listing, registered, trainable_datasets
from obfaudit.commands.audit import AuditJob, AuditReport, audit
from obfaudit.train_config import ATTACK_NETS

NOTE = (
    "note: 'obfaudit attack' is now 'obfaudit audit --attack NAME ... --transform SRC'; attack.json, "
    "attack.csv and the top-level figures are written for this release only (results.json, report.html "
    "and figures/ are the audit's)"
)


@dataclass(frozen=True, kw_only=True)
class AttackJob(AuditJob):
    """Settings of ``obfaudit attack`` (those of ``audit``, the transform given one of three ways)."""

    transform: str | None = None
    """Your own transform as MODULE:CALLABLE (a callable on image batches, or a factory with no
    arguments that returns one); the working directory is searched first."""
    obfnet: Path | None = None
    """Saved ObfNet to audit (.safetensors with its .json)."""
    control: str | None = None
    """Audit a control transform: identity or null."""

    def as_audit(self) -> AuditJob:
        source = self.obfnet or self.transform or self.control
        base = {f: getattr(self, f) for f in AuditJob.__dataclass_fields__ if f != "transform"}
        return AuditJob(**base, transform=str(source))


@dataclass
class LegacyAttack(Result):
    """What ``obfaudit attack`` printed: every record, the controls' too."""

    values: dict

    def to_dict(self) -> dict:
        return self.values

    def summary(self) -> str:
        r = self.values
        lines = [f"{'subject':<28} {'attack':<10} {'party':<12} {'score':>8}  verdict"]
        for rec in r["records"]:
            m = rec["metrics"]
            fa = m.get("feature_accuracy")
            score = f"{fa:8.2%}" if fa is not None else f"SSIM {m.get('ssim') or float('nan'):.3f}"
            who = f"{rec['subject']:<28} {rec['attack']:<10} {rec['party']:<12}"
            lines.append(f"{who} {score:>8}  {rec['verdict'] or '-'}")
        for subject, skipped in r["skipped"].items():
            for attack, why in skipped.items():
                lines.append(f"{subject}: {attack} did not run ({why})")
        lines.append(f"wrote {r['json']}, {r['csv']}" + "".join(f", {f}" for f in r["figures"]))
        return "\n".join(lines)


def write_legacy(report: AuditReport, out: Path) -> LegacyAttack:
    """attack.json, attack.csv and the figures under their old names, from an audit's report."""
    from obfaudit._io import write_json
    from obfaudit.records import write_csv

    doc = report.document
    summary = {
        "subject": doc["subject"],
        "source": doc["source"],
        "settings": doc["settings"],
        "dataset": doc["dataset"]["name"],
        "n_train": doc["dataset"]["train"],
        "n_test": doc["dataset"]["test"],
        "verdicts": doc["verdicts"],
        "skipped": doc["skipped"],
        "records": [e.to_dict() for e in report.experiments],
        "report": report.report,
    }
    for e in summary["records"]:  # the old records carried no row fields
        for key in (
            "id",
            "kind",
            "dataset",
            "attribute",
            "arch",
            "bottleneck",
            "defence",
            "settings",
            "model",
        ):
            e.pop(key, None)
        e.pop("artifacts", None)
    write_json(out / "attack.json", summary)
    write_csv(out / "attack.csv", report.experiments)
    figures = []
    for fig in sorted((out / "figures").glob("*.png")):
        shutil.copyfile(fig, out / fig.name)
        figures.append(str(out / fig.name))
    return LegacyAttack(
        {**summary, "json": str(out / "attack.json"), "csv": str(out / "attack.csv"), "figures": figures}
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(p, AttackJob, ["attacks"], attacks={"required": True})
    src = p.add_mutually_exclusive_group(required=True)
    add(src, AttackJob, ["obfnet", "transform", "control"], control={"choices": ("identity", "null")})
    add(
        p,
        AttackJob,
        [
            "data",
            "infnet",
            "epochs",
            "min_steps",
            "attack_nets",
            "n_train",
            "n_test",
            "n_proxy",
            "n_tsne",
            "tsne_backend",
            "no_controls",
            "seed",
            "device",
            "data_root",
            "download",
            "cache",
            "out",
        ],
        data={"type": registered(trainable_datasets, "dataset"), "metavar": "DATASET"},
        attack_nets={"choices": ATTACK_NETS},
        out={"required": True},
    )
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    job = pick(args, AttackJob, progress=ui.progress_bars)
    report = audit(job.as_audit(), on_progress=ui.on_progress)
    legacy = write_legacy(report, Path(job.out))
    ui.on_progress(Progress(NOTE))
    return legacy


def _describe() -> str:
    return (
        "Run registered attacks on one transform, each under its own party, with the identity, null and "
        "(for a saved model) random-weights controls beside it: 'obfaudit audit --attack NAME ...' under its "
        "old name, on data with a sensitive attribute. "
        f"Attacks: {attacks_listing()}."
    )


COMMAND = Command(
    "attack", "run chosen attacks on one transform (now: audit --attack)", _describe, add_arguments, run
)
