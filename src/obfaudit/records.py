"""Typed results: one record per attack, one experiment per row of results.json/csv.

An :class:`AttackRecord` is what the auditor produces for one attack on one subject. An
:class:`Experiment` is one row of a run's results (a trained model, an attack on an
ObfNet, a control, a cost row, the scaling study) with the settings that produced it as
typed fields, so figures and the report never parse names back into settings.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from obfaudit._io import atomic_write_text, to_jsonable

COMPROMISED = "compromised"
NOT_COMPROMISED = "not compromised"
INCONCLUSIVE = "inconclusive"

#: Kinds of experiment rows.
KINDS = ("infnet", "obfnet", "judge", "attack", "control", "cost", "scaling")


@dataclass
class AttackRecord:
    """One attack's scores on one subject (a transform under audit)."""

    subject: str
    """The transform's name (an ObfNet id, a control, a user's callable)."""
    attack: str
    """The registered attack's name."""
    party: str
    """Who ran it: server, adversary or third-party."""
    output: str
    """What it infers: image, attribute or embedding."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Scores from the scorer of its output kind (plain JSON values)."""
    verdict: str | None = None
    """compromised / inconclusive / not compromised, from the score's interval and the line."""
    fit: dict[str, Any] = field(default_factory=dict)
    """What training the attack did (epochs, losses, data it trained on)."""
    seconds: float = 0.0
    """Wall time of fit, inference and scoring."""

    @classmethod
    def from_dict(cls, d: dict) -> AttackRecord:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def to_dict(self) -> dict:
        return to_jsonable(self)


@dataclass
class Experiment:
    """One row of a run's results, with the settings that made it as typed fields."""

    id: str
    """Unique within a run, e.g. ``audit-colored-mnist-mlp-b512/colornet``."""
    kind: str
    """One of :data:`KINDS`."""
    dataset: str | None = None
    attribute: str | None = None
    """The sensitive attribute the attacks read (e.g. colour); None for models and costs."""
    arch: str | None = None
    """ObfNet architecture (mlp, cnn) or model name."""
    bottleneck: int | None = None
    defence: str | None = None
    """The defence an obfuscator was trained with; None for none."""
    subject: str | None = None
    attack: str | None = None
    party: str | None = None
    output: str | None = None
    verdict: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    """Saved model (path relative to the run directory), for model rows."""
    artifacts: str | None = None
    """Saved arrays for figures (path relative to the run directory)."""
    seconds: float | None = None

    @classmethod
    def from_attack(cls, record: AttackRecord, *, id: str, kind: str = "attack", **about: Any) -> Experiment:
        """An experiment row for ``record``; ``about`` gives dataset, arch, bottleneck..."""
        return cls(
            id=id,
            kind=kind,
            subject=record.subject,
            attack=record.attack,
            party=record.party,
            output=record.output,
            verdict=record.verdict,
            metrics=record.metrics,
            fit=record.fit,
            seconds=record.seconds,
            **about,
        )

    @classmethod
    def from_dict(cls, d: dict) -> Experiment:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def to_dict(self) -> dict:
        return to_jsonable(self)

    def metric(self, name: str) -> Any:
        return self.metrics.get(name)


#: Typed columns of results.csv, then the metrics that readers compare most.
CSV_COLUMNS = [
    "id",
    "kind",
    "dataset",
    "attribute",
    "arch",
    "bottleneck",
    "defence",
    "subject",
    "attack",
    "party",
    "output",
    "verdict",
]
CSV_METRICS = [
    "feature_accuracy",
    "threshold",
    "attribute_recovered",
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
]


def csv_text(experiments: list[Experiment]) -> str:
    """results.csv: one row per experiment, typed columns then the common metrics."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*CSV_COLUMNS, *CSV_METRICS, "seconds"])
    w.writeheader()
    for e in experiments:
        row = {c: getattr(e, c) for c in CSV_COLUMNS}
        row.update({m: to_jsonable(e.metrics.get(m)) for m in CSV_METRICS})
        row["seconds"] = e.seconds
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def write_csv(path: Path, experiments: list[Experiment]) -> None:
    atomic_write_text(path, csv_text(experiments))


def overall_verdict(verdicts: list[str | None]) -> str | None:
    """compromised if any attack says so; else inconclusive if any is; not compromised if every
    scored attack says so; None (no verdict) when no attack gave one."""
    given = [v for v in verdicts if v]
    if not given:
        return None
    for v in (COMPROMISED, INCONCLUSIVE):
        if v in given:
            return v
    return NOT_COMPROMISED
