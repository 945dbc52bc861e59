"""Typed results: one record per attack, one experiment per row of results.json/csv.

An :class:`AttackRecord` is what the auditor produces for one attack on one subject. An
:class:`Experiment` is one row of a run's results (a trained model, an attack on an
ObfNet, a control, a cost row, the scaling study) with the settings that produced it as
typed fields, so figures and the report never parse names back into settings.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from obfaudit._io import atomic_write_text, to_jsonable
from obfaudit.threat import Output, Party, Verdict, overall_verdict

COMPROMISED = Verdict.COMPROMISED
NOT_COMPROMISED = Verdict.NOT_COMPROMISED
INCONCLUSIVE = Verdict.INCONCLUSIVE


class Kind(StrEnum):
    """What an experiment row is."""

    INFNET = "infnet"
    OBFNET = "obfnet"
    JUDGE = "judge"
    ATTACK = "attack"
    """An attack on the subject under audit."""
    CONTROL = "control"
    """An attack on a control beside it (identity, null, same-shape, random weights)."""
    COST = "cost"
    SCALING = "scaling"


#: Kinds of experiment rows.
KINDS = tuple(Kind)


class Scores(dict):
    """An attack's metrics as results.json holds them (plain JSON values), read through types.

    The scorer of each output kind writes its own metrics; readers take the common ones
    as properties and intervals through :meth:`interval`, :meth:`lower` and :meth:`upper`,
    instead of looking up strings.
    """

    @property
    def feature_accuracy(self) -> float | None:
        """F_a: the share of test images whose attribute the attack read correctly."""
        return self.get("feature_accuracy")

    @property
    def ssim(self) -> float | None:
        return self.get("ssim")

    @property
    def psnr_db(self) -> float | None:
        return self.get("psnr_db")

    @property
    def mse(self) -> float | None:
        return self.get("mse")

    @property
    def chance(self) -> float | None:
        return self.get("chance")

    @property
    def threshold(self) -> float | None:
        """The compromise line of the attribute (twice chance, rounded up to the next ten percent)."""
        return self.get("threshold")

    @property
    def repeats(self) -> dict:
        """The spread over seeds, when the attack was trained more than once."""
        return self.get("repeats") or {}

    def interval(self, name: str = "feature_accuracy") -> tuple[float, float] | None:
        """The 95% interval of metric ``name``, if it has one."""
        ci = self.get(f"{name}_ci")
        return (ci[0], ci[1]) if ci else None

    def lower(self, name: str = "feature_accuracy") -> float:
        """The lower end of ``name``'s interval (the value itself when it has none)."""
        ci = self.interval(name)
        return ci[0] if ci else self[name]

    def upper(self, name: str = "feature_accuracy") -> float:
        ci = self.interval(name)
        return ci[1] if ci else self[name]


def _enum(kind, value):
    return None if value is None else kind(value)


@dataclass
class AttackRecord:
    """One attack's scores on one subject (a transform under audit)."""

    subject: str
    """The transform's name (an ObfNet id, a control, a user's callable)."""
    attack: str
    """The registered attack's name."""
    party: Party
    """Who ran it: server, adversary or third-party."""
    output: Output
    """What it infers: image, attribute or embedding."""
    metrics: Scores = field(default_factory=Scores)
    """Scores from the scorer of its output kind (plain JSON values)."""
    verdict: Verdict | None = None
    """compromised / inconclusive / not compromised, from the score's interval and the line."""
    fit: dict[str, Any] = field(default_factory=dict)
    """What training the attack did (epochs, losses, data it trained on)."""
    seconds: float = 0.0
    """Wall time of fit, inference and scoring."""

    def __post_init__(self) -> None:
        self.party, self.output = Party(self.party), Output(self.output)
        self.verdict = _enum(Verdict, self.verdict)
        self.metrics = Scores(self.metrics)

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
    party: Party | None = None
    output: Output | None = None
    verdict: Verdict | None = None
    metrics: Scores = field(default_factory=Scores)
    fit: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    """Saved model (path relative to the run directory), for model rows."""
    artifacts: str | None = None
    """Saved arrays for figures (path relative to the run directory)."""
    seconds: float | None = None

    def __post_init__(self) -> None:
        self.party, self.output = _enum(Party, self.party), _enum(Output, self.output)
        self.verdict = _enum(Verdict, self.verdict)
        self.kind = _enum(Kind, self.kind)
        self.metrics = Scores(self.metrics)

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


@dataclass
class PartyVerdict:
    """One party's verdict on an audit's subject: the strongest of its attacks, a *not compromised*
    counted only from calibrated attacks; what the summary's table, the gate and JUnit read."""

    party: Party
    verdict: Verdict | None
    strongest: str = "-"
    """Its strongest attack."""
    score: str = "-"
    """That attack's score with its interval, as text."""
    attacks: int = 0
    """How many of its attacks ran."""

    def __post_init__(self) -> None:
        self.party, self.verdict = Party(self.party), _enum(Verdict, self.verdict)

    @classmethod
    def from_dict(cls, d: dict) -> PartyVerdict:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def to_dict(self) -> dict:
        return to_jsonable(self)


#: An audit document's keys after the subject, in the order results.json has always had them; those in
#: :data:`_OPTIONAL` are left out when empty.
_ORDER = (
    "dataset", "baselines", "verdicts", "verdict", "verdict_of_the_attacks", "calibration", "skipped",
    "settings", "experiments", "defence", "utility", "parties", "judge", "controls", "weaker_attacks_only",
    "traffic", "screen", "knowledge",
)  # fmt: skip
_OPTIONAL = (
    "defence",
    "utility",
    "judge",
    "controls",
    "weaker_attacks_only",
    "traffic",
    "screen",
    "knowledge",
)


@dataclass
class AuditDocument:
    """What one audit found, as results.json holds it: the subject and where it came from, the data,
    the baselines, each subject's verdict (the subject's calibrated), each attack's calibration, what did
    not run, the settings, every row (the controls' too) and the parties' verdicts; the report,
    ``compare``, the gate and the JUnit writer read it. ``to_dict``/``from_dict`` round-trip the JSON."""

    subject: str
    source: str = ""
    dataset: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    verdicts: dict[str, Verdict | None] = field(default_factory=dict)
    verdict: Verdict | None = None
    verdict_of_the_attacks: Verdict | None = None
    """Before calibration (older audits did not write it)."""
    calibration: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    experiments: list[Experiment] = field(default_factory=list)
    parties: list[PartyVerdict] = field(default_factory=list)
    gradients: str | None = None
    """How gradients reach the white-box attacks (an ONNX graph's conversion), where it says."""
    defence: dict | None = None
    utility: dict | None = None
    judge: dict | None = None
    controls: dict[str, dict] | None = None
    """What the controls with a description are (the same-shape control's shape and layout)."""
    weaker_attacks_only: dict[str, str] | None = None
    traffic: dict | None = None
    screen: dict | None = None
    knowledge: dict | None = None

    FORMAT = "obfaudit_audit"
    VERSION = 1

    def __post_init__(self) -> None:
        self.verdict = _enum(Verdict, self.verdict)
        self.verdict_of_the_attacks = _enum(Verdict, self.verdict_of_the_attacks)
        self.verdicts = {k: _enum(Verdict, v) for k, v in self.verdicts.items()}
        self.experiments = [
            e if isinstance(e, Experiment) else Experiment.from_dict(e) for e in self.experiments
        ]
        self.parties = [p if isinstance(p, PartyVerdict) else PartyVerdict.from_dict(p) for p in self.parties]

    def to_dict(self) -> dict:
        """results.json, its keys in the order audits have always written them."""
        out: dict = {self.FORMAT: self.VERSION, "subject": self.subject, "source": self.source}
        if self.gradients is not None:
            out["gradients"] = self.gradients
        for k in _ORDER:
            if k not in _OPTIONAL or getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return to_jsonable(out)

    @classmethod
    def from_dict(cls, d: dict) -> AuditDocument:
        if d.get(cls.FORMAT) != cls.VERSION:
            raise ValueError(f"not an audit's results ({cls.FORMAT}: {cls.VERSION} missing)")
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    @classmethod
    def read(cls, path: str | Path) -> AuditDocument:
        """An audit's results.json."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def rows(self, subject: str | None = None) -> list[Experiment]:
        """The rows of ``subject`` (every row when None)."""
        return [e for e in self.experiments if subject is None or e.subject == subject]


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


def read_records(run_dir: str | Path) -> dict[str, dict]:
    """Every readable stage record of a run directory, by stage name."""
    out: dict[str, dict] = {}
    for path in sorted((Path(run_dir) / "stages").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("result"), dict):
            out[path.stem] = record
    return out


__all__ = [
    "AttackRecord",
    "AuditDocument",
    "Experiment",
    "Kind",
    "PartyVerdict",
    "Scores",
    "overall_verdict",
    "read_records",
    "write_csv",
]
