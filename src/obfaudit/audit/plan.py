"""An audit as stages: one per attack on each subject, resumable through the stage cache.

``obfaudit audit`` runs its attacks as the reproduction runs its sweep: each (subject,
attack) is a stage whose key hashes what decides its scores (the data's and the subject's
fingerprints, the attack, the settings, the judge it reads), and whose record is written
the moment it finishes. A killed audit resumes with the attacks it had finished; the
controls and the judge depend only on the data and the settings, so they live in a cache
shared by audits (``--cache``) and a second audit of another transform on the same data
reuses them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from obfaudit._io import atomic_write_bytes, fingerprint, safe_name
from obfaudit._version import __version__
from obfaudit.attacks import AuditResult, SubjectAudit, attack_class
from obfaudit.attacks.prepare import (
    PreparedAudit,
    config_settings,
    data_fingerprint,
    needs_gradients,
    network_settings,
)
from obfaudit.attacks.uncertainty import Bootstrap, interval_verdict
from obfaudit.errors import ObfauditError
from obfaudit.experiments.stages import Resources, Stage, artifacts_ok, settings_hash
from obfaudit.models import load_model, read_sidecar, save_model
from obfaudit.models.attack_nets import describe
from obfaudit.records import AttackRecord
from obfaudit.threat import NeedKind, Output, Party
from obfaudit.train import predict
from obfaudit.transforms import Transform


@dataclass
class AuditSubject:
    """A transform an audit attacks: the one under audit, or a control beside it."""

    name: str
    make: Callable[[], Transform]
    """Makes the transform (called when its first stage runs, in the process that runs it)."""
    fingerprint: str
    """What it is: a saved model's hash, a control's recipe, or its outputs on probe images."""
    shared: bool = False
    """A control: its stages live in the shared cache, for other audits of the same data."""
    traffic: bool = False
    """Attack the captured traffic instead of transforming the test images."""
    about: dict | None = None
    """What a control is, for the results (the same-shape control's shape and layout)."""
    learned_only: bool = False
    """Run only the attacks that learn from what is sent, not those that use the transform itself
    (the same-shape control checks the attack networks on the subject's kind of tensor; an inversion
    of the control says nothing of an inversion of the subject)."""


@dataclass
class AuditPieces:
    """An audit ready to plan: the prepared data and settings, and the subjects in order (the
    one under audit first)."""

    prepared: PreparedAudit
    subjects: list[AuditSubject]


@dataclass(kw_only=True)
class AuditContext:
    """What the stages of one audit share. ``prepare`` makes the pieces (in a Ray worker too,
    where the context arrives pickled without them)."""

    prepare: Callable[[], AuditPieces]
    out: Path
    cache: Path
    """The cache shared by audits (the controls' and the judge's stages)."""
    progress: bool = False
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    """This audit (a Ray worker keeps one context per audit: another audit into the same folder,
    in the same Ray session, must not find this one's transform and data)."""
    loaded: AuditPieces | None = field(default=None, repr=False)
    """The pieces once made (the caller passes its own; dropped when pickled: a worker makes them)."""
    _auditor: tuple[str, SubjectAudit] | None = field(default=None, repr=False)
    _judge: str | None = field(default=None, repr=False)
    """The SHA-256 of the judge the auditor reads reconstructions with."""

    def cache_id(self) -> str:
        return f"audit:{self.run}"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "loaded": None, "_auditor": None, "_judge": None}

    @property
    def pieces(self) -> AuditPieces:
        if self.loaded is None:
            self.loaded = self.prepare()
        return self.loaded

    def subject(self, name: str) -> AuditSubject:
        return next(s for s in self.pieces.subjects if s.name == name)

    def auditor(self, name: str, judge: dict | None) -> SubjectAudit:
        """The auditor of subject ``name`` (kept for its next attack: the knowledge its parties
        observed is shared by their attacks; one subject at a time, to bound memory), reading
        reconstructions with the ``judge`` record's model when one is given."""
        if self._auditor is None or self._auditor[0] != name:
            self._auditor, self._judge = None, None  # free the previous subject's views first
            subject = self.subject(name)
            prepared = self.pieces.prepared
            audit = prepared.subject(name, subject.make(), traffic=subject.traffic)
            audit.available(gradients=needs_gradients(prepared.config.attacks))
            self._auditor = (name, audit)
        audit = self._auditor[1]
        if judge is not None and self._judge != judge["result"]["sha256"]:
            model = load_model(self.cache / judge["result"]["model"], device=audit.device)[0]
            audit.set_judge(model)
            self._judge = judge["result"]["sha256"]
        return audit


def _judge_ok(ctx: AuditContext, record: dict) -> bool:
    try:
        _, info = load_model(ctx.cache / record["result"]["model"])
        return info["sha256"] == record["result"]["sha256"]
    except (ObfauditError, KeyError, TypeError):
        return False


def run_audit_judge(ctx: AuditContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    """Train the attribute judge on the clean training images; keep it in the stage's store."""
    prepared = ctx.pieces.prepared
    judge = prepared.train_judge()
    test = prepared.test
    read = predict(judge, test.x, device=prepared.config.device).argmax(1).cpu()
    correct = (read == test.labels[prepared.attribute]).numpy()
    acc = float(correct.mean())
    # checked as the attacks are: a judge that cannot read the attribute on clean images reads nothing
    ci = Bootstrap(len(test), seed=prepared.config.seed).interval(correct)
    verdict = interval_verdict(acc, ci, prepared.baselines.threshold)
    # a name of its own: two audits sharing the cache may train the same judge at once, and
    # their weights need not match byte for byte (another thread count, a GPU)
    name = f"{stage.name}-{uuid.uuid4().hex[:8]}"
    weights = save_model(judge.cpu(), ctx.cache / "models" / name, metrics={"clean_test_acc": acc})
    info = read_sidecar(weights)
    return {
        "model": str(weights.relative_to(ctx.cache)),
        "sha256": info["sha256"],
        "clean_test_acc": acc,
        "clean_test_acc_ci": ci,
        "verdict": verdict,
        "network": describe(judge),
    }


def run_audit_attack(ctx: AuditContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    """One attack on one subject; the subject under audit keeps its outputs for the figures."""
    subject, attack = stage.about["subject"], stage.about["attack"]
    planned, here = stage.settings.get("subject"), ctx.subject(subject).fingerprint
    if planned is not None and here != planned:  # a worker process built the transform itself
        raise ObfauditError(
            f"{subject}: the transform this process built differs from the one planned (its outputs on the "
            "probe images differ): it draws at random outside the seed of its factory (at import, say); "
            "seed it, or run with --executor serial"
        )
    auditor = ctx.auditor(subject, inputs.get("judge"))
    record = auditor.run(attack)
    out: dict = {
        "subject": subject,
        "attack": attack,
        "record": record.to_dict() if record else None,
        "skipped": auditor.result.skipped.get(attack),
    }
    if record is not None and stage.about.get("main"):
        arts = auditor.result.artifacts
        keep = {
            k: v for k, v in arts.items() if k in ("originals", "transformed") or k.startswith(f"{attack}/")
        }
        path = ctx.out / "artifacts" / f"{stage.name}.safetensors"
        tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(keep.items())}
        atomic_write_bytes(path, save_safetensors(tensors))
        out["artifacts"] = str(path.relative_to(ctx.out))
    return out


def _safe(name: str) -> str:
    return safe_name(name, "subject")


def plan_audit(pieces: AuditPieces, *, cache: Path, gpu: bool = False) -> list[Stage]:
    """The stages of an audit: the judge (when an image attack runs), then every attack on the
    subject under audit, then on each control. Controls and the judge go to ``cache``.

    Each attack stage's key holds what its scores depend on and little else (the test split
    and the seeds always; the training split for the server's attacks; the proxies and their
    training budget for those that train on them; the t-SNE settings for embeddings; the InfNet
    and the judge for reconstructions), so the controls of one audit serve another that runs
    other attacks beside them or another budget for the others. The subject under audit's
    stages hold its name too (its records carry it); the shared ones hold obfaudit's version,
    so an upgrade never reuses what an older release computed.
    """
    prepared = pieces.prepared
    keys = _Keys.of(prepared)
    resources = Resources(cpus=1, gpus=1 if gpu else 0)
    stages: list[Stage] = []
    judge: dict[str, str] = {}
    if prepared.needs_judge and prepared.train is not None:
        stages.append(_judge_stage(prepared, keys, resources, cache))
        judge = {"judge": stages[-1].name}
    for i, subject in enumerate(pieces.subjects):
        named: dict[str, str] = {}  # this subject's stages by attack
        for attack in prepared.config.attacks:
            cls = attack_class(attack)
            if subject.learned_only and cls.uses_transform():
                continue
            inputs = dict(judge) if cls.output is Output.IMAGE else {}
            if cls.starts_from in named:  # after the attack whose network it starts from (see Attack)
                inputs["start"] = named[cls.starts_from]
            stage = _attack_stage(subject, attack, keys, inputs, resources, main=i == 0, cache=cache)
            named[attack] = stage.name
            stages.append(stage)
    return stages


@dataclass(frozen=True)
class _Keys:
    """What the stages' keys hold of the data and the settings (fingerprints, budgets, seeds)."""

    test: dict
    train: str | None
    proxies: dict
    budget: dict
    common: dict
    nets: dict
    infnet: str | None
    train_config: dict
    tsne_backend: str

    @classmethod
    def of(cls, prepared: PreparedAudit) -> _Keys:
        config = prepared.config
        return cls(
            test={
                "test": data_fingerprint(prepared.test),
                "attribute": prepared.attribute,
                "task": prepared.task,
            },
            train=data_fingerprint(prepared.train),
            proxies={n: data_fingerprint(p) for n, p in sorted(prepared.proxies.items())},
            budget=config_settings(config),
            common={"seed": config.seed, "repeats": config.repeats, "samples": config.samples},
            nets=network_settings(config),
            infnet=fingerprint(*prepared.infnet.state_dict().values())
            if prepared.infnet is not None
            else None,
            train_config=config.train.to_dict(),
            tsne_backend=config.tsne_backend,
        )


def _judge_stage(prepared: PreparedAudit, keys: _Keys, resources: Resources, cache: Path) -> Stage:
    """The attribute judge of reconstructions, trained on the clean training split, kept in the cache."""
    settings = {
        "train": keys.train,
        "test": keys.test["test"],  # its clean-test accuracy and interval are part of its record
        "attribute": prepared.attribute,
        "config": keys.train_config,
        **keys.nets,
        "obfaudit": __version__,
    }
    return Stage(
        f"judge-{settings_hash(settings)[:12]}",
        run_audit_judge,
        settings=settings,
        about={"kind": "judge", "attribute": prepared.attribute},
        outputs=("model", "sha256"),
        valid=_judge_ok,
        resources=resources,
        store=cache,
    )


def _attack_stage(
    subject: AuditSubject,
    attack: str,
    keys: _Keys,
    inputs: dict[str, str],
    resources: Resources,
    *,
    main: bool,
    cache: Path,
) -> Stage:
    """One attack on one subject; a control's stage lives in the shared cache under a key of what its
    scores depend on (so another audit of the same data reuses it)."""
    cls = attack_class(attack)
    budget = keys.budget
    own = {**keys.test, **keys.common, "subject": subject.fingerprint, "attack": attack}
    if cls.output is Output.EMBEDDING:
        own["tsne"] = [budget["tsne_points"], budget["perplexity"], keys.tsne_backend]
    else:
        own["train_config"] = budget["train"]
        own.update(keys.nets)
    if cls.party is Party.SERVER:
        own["train"] = keys.train
    if any(n.kind is NeedKind.PROXY for n in cls.needs):
        own["proxies"] = keys.proxies
        own["proxy_config"] = budget["proxy_train"]
    if cls.output is Output.IMAGE:
        own["infnet"] = keys.infnet
    shared = subject.shared
    own["obfaudit" if shared else "name"] = __version__ if shared else subject.name
    name = (
        f"{_safe(subject.name)}-{_safe(attack)}-{settings_hash(own)[:12]}"
        if shared
        else f"attack-{_safe(attack)}"
    )
    return Stage(
        name,
        run_audit_attack,
        settings=own,
        inputs=inputs,
        about={
            "kind": "attack" if main else "control",
            "subject": subject.name,
            "attack": attack,
            "main": main,
        },
        outputs=("subject", "attack"),
        valid=artifacts_ok,
        resources=resources,
        cost=cls.cost,
        store=cache if shared else None,
    )


def collect_audit(
    stages: Sequence[Stage], records: Mapping[str, dict], out: Path, subjects: Sequence[str]
) -> dict[str, AuditResult]:
    """Each subject's result, rebuilt from its stages' records (the main one with its figure arrays)."""
    results = {name: AuditResult(name) for name in subjects}
    for stage in stages:
        if stage.about.get("kind") not in ("attack", "control") or stage.name not in records:
            continue
        res = records[stage.name]["result"]
        result = results[res["subject"]]
        if res.get("record"):
            result.records.append(AttackRecord.from_dict(res["record"]))
        elif res.get("skipped"):
            result.skipped[res["attack"]] = res["skipped"]
        if res.get("artifacts"):
            result.artifacts.update(load_file(str(out / res["artifacts"])))
    return results


__all__ = [
    "AuditContext",
    "AuditPieces",
    "AuditSubject",
    "collect_audit",
    "plan_audit",
]
