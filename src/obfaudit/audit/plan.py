"""An audit as stages: one per attack on each subject, resumable through the stage cache.

``obfaudit audit`` runs its attacks as the reproduction runs its sweep: each (subject,
attack) is a stage whose key hashes what decides its scores (the data's and the subject's
fingerprints, the attack, the settings, the judge it reads), and whose record is written
the moment it finishes. A killed audit resumes with the attacks it had finished; the
controls and the judge depend only on the data and the settings, so they live in a cache
shared by audits (``--cache``) and a second audit of another transform on the same data
reuses them.

The judge and attack stages are the same for the study's reproduction (:mod:`obfaudit.study.plan`):
it plans each ObfNet and control with :func:`subject_stages` and :func:`attack_stage`, keyed by its
preset's settings and the stages that trained the ObfNet and the InfNet, and its context answers
what the stages ask (:class:`AuditHost`). So both have one judge, one attack stage, one record and
one row collector (:mod:`obfaudit.report.collect`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from obfaudit._io import atomic_write_bytes, fingerprint, safe_name
from obfaudit._version import __version__
from obfaudit.attacks import AuditResult, SubjectAudit, attack_class
from obfaudit.attacks.prepare import (
    PreparedAudit,
    baselines,
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
from obfaudit.records import AttackRecord, Kind
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
    attacks: tuple[str, ...] | None = None
    """The attacks run on it; None: every attack of the audit (the study runs its slow and embedding
    attacks on some ObfNets only)."""


class AuditHost(Protocol):
    """What the audit's stage functions ask of the run that planned them: an audit
    (:class:`obfaudit.audit.run.AuditContext`) or the study's reproduction (its ObfNets come from
    earlier stages, its data from the preset)."""

    out: Path
    """The run directory (the subject's figure arrays go to its ``artifacts/``)."""
    cache: Path
    """Where the judge's weights live (its record holds their path relative to this)."""
    auditors: Auditors

    def prepared_for(self, stage: Stage, inputs: Mapping[str, dict]) -> PreparedAudit:
        """The prepared data and settings of ``stage``'s audit."""
        ...

    def subject_for(self, stage: Stage, inputs: Mapping[str, dict]) -> AuditSubject:
        """The subject ``stage`` attacks."""
        ...


@dataclass
class Auditors:
    """The auditor of the subject a process is attacking, kept for the subject's next attack (the
    knowledge its parties observed is shared by their attacks; one subject at a time, to bound memory)."""

    key: tuple | None = None
    audit: SubjectAudit | None = None
    judge: str | None = None
    """The SHA-256 of the judge the auditor reads reconstructions with."""

    def clear(self) -> None:
        """Let the auditor go (a stage that trains something else frees its memory first)."""
        self.key, self.audit, self.judge = None, None, None

    def of(self, host: AuditHost, stage: Stage, inputs: Mapping[str, dict]) -> SubjectAudit:
        """The auditor of ``stage``'s subject, reading reconstructions with its ``judge`` input's model."""
        subject = host.subject_for(stage, inputs)
        planned = stage.settings.get("subject")
        if planned is not None and subject.fingerprint != planned:  # a worker process built it itself
            raise ObfauditError(
                f"{subject.name}: the transform this process built differs from the one planned (its outputs "
                "on the probe images differ): it draws at random outside the seed of its factory (at import, "
                "say); seed it, or run with --executor serial"
            )
        infnet = inputs.get("infnet")  # (a study's: the InfNet the reconstructions are scored with)
        key = (
            stage.about.get("dataset"),
            subject.name,
            subject.fingerprint,
            infnet and infnet["result"]["sha256"],
        )
        if self.key != key:
            self.clear()  # free the previous subject's views first
            prepared = host.prepared_for(stage, inputs)
            audit = prepared.subject(subject.name, subject.make(), traffic=subject.traffic)
            audit.available(gradients=needs_gradients(subject.attacks or prepared.config.attacks))
            self.key, self.audit = key, audit
        audit = self.audit
        judge = inputs.get("judge")
        if judge is not None and self.judge != judge["result"]["sha256"]:
            model = load_model(host.cache / judge["result"]["model"], device=audit.device)[0]
            audit.set_judge(model)
            self.judge = judge["result"]["sha256"]
        return audit


def model_ok(ctx: AuditHost, record: dict) -> bool:
    """The model a stage saved (``result.model``, under ``ctx.cache``) loads and is the one its record made
    (the same SHA-256): a stage kept from an earlier run whose model is gone or changed is run again."""
    try:
        _, info = load_model(ctx.cache / record["result"]["model"])
        return info["sha256"] == record["result"]["sha256"]
    except (ObfauditError, KeyError, TypeError):
        return False


def run_audit_judge(ctx: AuditHost, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    """Train the attribute judge on the clean training images; keep its weights under ``ctx.cache``."""
    ctx.auditors.clear()
    prepared = ctx.prepared_for(stage, inputs)
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


def run_audit_attack(ctx: AuditHost, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    """One attack on one subject; the subject under audit keeps its outputs for the figures."""
    subject, attack = stage.about["subject"], stage.about["attack"]
    auditor = ctx.auditors.of(ctx, stage, inputs)
    record = auditor.run(attack)
    out: dict = {
        "subject": subject,
        "attack": attack,
        "record": record.to_dict() if record else None,
        "skipped": auditor.result.skipped.get(attack),
    }
    if auditor.config.attribute in auditor.test.labels:  # what its scores are read against
        out["baselines"] = baselines(auditor.test, auditor.config.attribute).to_dict()
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


def judge_stage(name: str, settings: dict, about: dict, resources: Resources, store: Path | None) -> Stage:
    """The stage of the attribute judge of reconstructions (``about``: what the result rows say of it)."""
    return Stage(
        name,
        run_audit_judge,
        settings=settings,
        about={"kind": "judge", **about},
        outputs=("model", "sha256"),
        valid=model_ok,
        resources=resources,
        store=store,
    )


def subject_stages(
    attacks: Sequence[str],
    judge: str | None,
    stage: Callable[[str, dict[str, str]], Stage],
    *,
    learned_only: bool = False,
) -> list[Stage]:
    """The stages of ``attacks`` on one subject, in order: ``stage(attack, inputs)`` makes each (its name,
    key and rows); an image attack reads the ``judge`` stage's model, and an attack that starts from another
    one's network comes after it (on the same worker, see :class:`~obfaudit.attacks.Attack`).
    ``learned_only``: only those that learn from what is sent (see :class:`AuditSubject`)."""
    named: dict[str, str] = {}
    stages = []
    for attack in attacks:
        cls = attack_class(attack)
        if learned_only and cls.uses_transform():
            continue
        inputs = {"judge": judge} if judge is not None and cls.output is Output.IMAGE else {}
        if cls.starts_from in named:
            inputs["start"] = named[cls.starts_from]
        stages.append(stage(attack, inputs))
        named[attack] = stages[-1].name
    return stages


def attack_stage(
    name: str, attack: str, settings: dict, inputs: dict[str, str], about: dict, resources: Resources, **kw
) -> Stage:
    """The stage of one attack on one subject (``about``: its ``subject``, ``main`` when it is the one under
    audit, the result row's ``id`` and what the rows say of it; ``kw``: the stage's ``store``)."""
    kind = Kind.ATTACK if about.get("main") else Kind.CONTROL
    return Stage(
        name,
        run_audit_attack,
        settings=settings,
        inputs=inputs,
        about={"kind": str(kind), "attack": attack, **about},
        outputs=("subject", "attack", "record"),
        valid=artifacts_ok,
        resources=resources,
        cost=attack_class(attack).cost,
        **kw,
    )


def _safe(name: str) -> str:
    return safe_name(name, "subject")


def plan_audit(
    prepared: PreparedAudit,
    subjects: Sequence[AuditSubject],
    dataset: str | None,
    *,
    cache: Path,
    gpu: bool = False,
) -> list[Stage]:
    """The stages of an audit: the judge (when an image attack runs), then every attack on the
    subject under audit (the first of ``subjects``), then on each control, on ``dataset``. Controls and the
    judge go to ``cache``.

    Each attack stage's key holds what its scores depend on and little else (the test split
    and the seeds always; the training split for the server's attacks; the proxies and their
    training budget for those that train on them; the t-SNE settings for embeddings; the InfNet
    and the judge for reconstructions), so the controls of one audit serve another that runs
    other attacks beside them or another budget for the others. The subject under audit's
    stages hold its name too (its records carry it); the shared ones hold obfaudit's version,
    so an upgrade never reuses what an older release computed.
    """
    keys = _Keys.of(prepared)
    resources = Resources(cpus=1, gpus=1 if gpu else 0)
    rows = {"dataset": dataset, "attribute": prepared.attribute}
    stages: list[Stage] = []
    judge = None
    if prepared.needs_judge and prepared.train is not None:
        stages.append(_judge_stage(prepared, keys, resources, cache, rows))
        judge = stages[-1].name
    for i, subject in enumerate(subjects):

        def stage(attack: str, inputs: dict[str, str], subject=subject, main=i == 0) -> Stage:
            return _attack_stage(subject, attack, keys, inputs, resources, main=main, cache=cache, rows=rows)

        attacks = subject.attacks or prepared.config.attacks
        stages += subject_stages(attacks, judge, stage, learned_only=subject.learned_only)
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


def _judge_stage(
    prepared: PreparedAudit, keys: _Keys, resources: Resources, cache: Path, rows: dict
) -> Stage:
    """The attribute judge of reconstructions, trained on the clean training split, kept in the cache."""
    settings = {
        "train": keys.train,
        "test": keys.test["test"],  # its clean-test accuracy and interval are part of its record
        "attribute": prepared.attribute,
        "config": keys.train_config,
        **keys.nets,
        "obfaudit": __version__,
    }
    return judge_stage(f"judge-{settings_hash(settings)[:12]}", settings, rows, resources, cache)


def _attack_stage(
    subject: AuditSubject,
    attack: str,
    keys: _Keys,
    inputs: dict[str, str],
    resources: Resources,
    *,
    main: bool,
    cache: Path,
    rows: dict,
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
    about = {"subject": subject.name, "main": main, "id": f"{subject.name}/{attack}", **rows}
    return attack_stage(name, attack, own, inputs, about, resources, store=cache if shared else None)


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
    "AuditHost",
    "AuditSubject",
    "Auditors",
    "attack_stage",
    "collect_audit",
    "judge_stage",
    "model_ok",
    "plan_audit",
    "subject_stages",
]
