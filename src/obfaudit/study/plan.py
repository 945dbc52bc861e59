"""The plan of a reproduction: which stages, with which settings, depending on which.

:func:`plan` turns a preset into stages (see :mod:`obfaudit.experiments.stages`), per dataset:

1. ``infnet-<data>``: InfNet-CNN on MNIST and on Colored-MNIST.
2. ``judge-<data>``: the attribute's judge of reconstructions (where an image attack runs).
3. ``obfnet-<data>-<arch>-b<N>``: an ObfNet per architecture and bottleneck (and defence).
4. ``audit-<data>-<arch>-b<N>-<attack>``: each of the preset's attacks on that ObfNet (on MNIST only
   those that need no attribute; the embedding attacks only on the preset's t-SNE ObfNets).
5. ``control-<data>-<control>-<attack>``: the same attacks on the identity, the null transform and
   random weights of each ObfNet architecture.

then ``cost`` and, with an image folder, ``scaling`` (the 224x224x3 study). The judge and the attack
stages are the audit engine's (:mod:`obfaudit.audit.plan`): one judge, one attack stage and one row
collector (:mod:`obfaudit.report.collect`) for ``obfaudit audit`` and the reproduction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from obfaudit._io import safe_name
from obfaudit.attacks import Output, attack_class
from obfaudit.attacks.prepare import audit_config, config_settings
from obfaudit.audit.plan import attack_stage, judge_stage, model_ok, subject_stages
from obfaudit.data import COLOUR, dataset_spec
from obfaudit.defences import DEFENCES, defence_from_dict, get_defence
from obfaudit.errors import ObfauditError
from obfaudit.experiments.stages import Resources, Stage
from obfaudit.experiments.steps import fit_infnet, fit_obfnet, task_of
from obfaudit.models import model_id, read_sidecar, save_model
from obfaudit.study.context import PROXIES, RunContext, RunSettings, attack_budget, attribute_of
from obfaudit.study.presets import Preset
from obfaudit.threat import ANY_PROXY, GRADIENTS, TRAFFIC, TRAIN, TRANSFORM, Need, why_unmet
from obfaudit.threat import ATTRIBUTE as ATTRIBUTE_NEED
from obfaudit.transforms import CONTROLS

#: The study's sensitive attribute and task label.
ATTRIBUTE = COLOUR  # the study's


@dataclass(frozen=True)
class NotRun:
    """A part of the study the plan leaves out, and why (shown in the report)."""

    part: str
    reason: str


def sweep(preset: Preset, ds: str) -> list[tuple[str, int]]:
    if ds == "mnist":
        return [("mlp", n) for n in preset.mnist_bottlenecks]
    return [(arch, n) for arch in preset.archs for n in preset.bottlenecks]


def defences_for(preset: Preset, ds: str) -> list[dict | None]:
    """The defences each ObfNet of ``ds`` is trained with: None (the study's ObfNet) unless the
    preset sweeps defences (on the data with the attribute the adversarial one needs)."""
    attribute = attribute_of(ds)
    if not preset.defences or attribute is None:
        return [None]
    return [
        get_defence(
            name, strength, **({"attribute": attribute} if "attribute" in DEFENCES[name].options else {})
        ).to_dict()
        for name, strength in preset.defences
    ]


def subject_suffix(defence: dict | None) -> str:
    """How a defended ObfNet's stage and subject names end, e.g. ``-dcor-2`` (none: ``-none``)."""
    return "" if defence is None else f"-{defence_from_dict(defence).label}"


def _active(preset: Preset, ds: str) -> bool:
    return bool(preset.mnist_bottlenecks if ds == "mnist" else preset.bottlenecks)


def _available(ds: str) -> set[Need]:
    """What the attacks of a sweep on ``ds`` can have: ObfNets are torch modules; the attribute's
    labels where the data has one; the generated proxies where it is Colored-MNIST's colour."""
    attribute = attribute_of(ds)
    available = {TRAIN, TRAFFIC, TRANSFORM, GRADIENTS}
    if attribute is not None:
        available.add(ATTRIBUTE_NEED)
        if attribute == ATTRIBUTE:  # the adversary's generated proxies are of colour
            available |= {ANY_PROXY, *(Need.proxy_named(p) for p in PROXIES)}
    return available


def attacks_for(
    ds: str, attacks: tuple[str, ...], preset: Preset, subject: tuple[str, int] | None
) -> tuple[str, ...]:
    """The attacks that can run on ``ds`` (their needs met by its labels and the proxies);
    embedding attacks only on the preset's t-SNE subjects (they cost a minute each), slow
    attacks only on its ``slow_on`` subjects (``subject`` None: the controls)."""
    available = _available(ds)
    keep = []
    for name in attacks:
        cls = attack_class(name)
        if cls.unmet(available):
            continue
        if cls.output is Output.EMBEDDING and subject not in preset.tsne:
            continue
        if cls.slow and preset.slow_on is not None and subject not in preset.slow_on:
            continue
        keep.append(name)
    return tuple(keep)


# ----------------------------------------------------------------------------- stage functions


def _schedule(preset: Preset) -> dict:
    """The learning-rate settings of InfNets and ObfNets; the study's constant 1e-3 adds no keys."""
    if preset.model_schedule == "constant" and preset.model_lr == 1e-3:
        return {}
    return {"schedule": preset.model_schedule, "lr": preset.model_lr}


def _saved(ctx: RunContext, model, path: Path, ds: str, metrics: dict) -> dict:
    extra = {"defence": metrics["defence"]} if "defence" in metrics else {}
    weights = save_model(model, path, dataset=ds, seed=ctx.seed, metrics=metrics, **extra)
    sha = read_sidecar(weights)["sha256"]
    return {"model": str(weights.relative_to(ctx.out)), "sha256": sha, **metrics}


def run_infnet(ctx: RunContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    ctx.auditors.clear()  # (a serial run: the last subject's auditor is not kept through the training)
    ds = stage.about["dataset"]
    p = ctx.preset
    train, test = ctx.data(ds)
    path = ctx.models / f"infnet-cnn-{ds}"
    model, metrics = fit_infnet("cnn", train, test, ctx.model_config(p.infnet_epochs))
    return _saved(ctx, model, path, ds, metrics)


def run_obfnet(ctx: RunContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    ctx.auditors.clear()
    ds, arch, n = stage.about["dataset"], stage.about["arch"], stage.about["bottleneck"]
    p = ctx.preset
    train, test = ctx.data(ds)
    infnet = ctx.load(inputs["infnet"])
    d = stage.settings.get("defence")
    model, metrics = fit_obfnet(
        arch,
        n,
        infnet,
        train,
        test,
        ctx.model_config(p.obfnet_epochs),
        infnet_dropout=p.infnet_dropout,
        defence=defence_from_dict(d),
        attribute=attribute_of(ds) or ATTRIBUTE,
    )
    name = f"{model_id(f'obfnet_{arch}', bottleneck=n)}{subject_suffix(d)}-{ds}"
    return _saved(ctx, model, ctx.models / name, ds, metrics)


def _audit_settings(preset: Preset, settings: RunSettings, attacks: tuple[str, ...], ds: str) -> dict:
    """The audit settings that decide its results, from the preset alone (no data loaded)."""
    config = audit_config(
        attacks,
        attribute=attribute_of(ds) or ATTRIBUTE,
        task=task_of(ds),
        budget=attack_budget(preset),
        seed=settings.seed,
        device=settings.device,
        tsne_points=preset.tsne_points,
    )
    return {**config_settings(config), "proxy_n": preset.proxy_n}


# ----------------------------------------------------------------------------- the plan


def plan(preset: Preset, settings: RunSettings) -> tuple[list[Stage], list[NotRun]]:
    """The stages of ``preset`` in dependency order, and the parts it leaves out (and why)."""
    from obfaudit.study.scaling import cost_stage, scaling_stage

    attacks = settings.attacks or preset.attacks
    for name in attacks:
        attack_class(name)
    stages: list[Stage] = []
    not_run: list[NotRun] = []
    for ds in preset.datasets:
        if not _active(preset, ds):
            not_run.append(NotRun(f"{ds} sweep", f"preset {preset.name!r} trains no ObfNets on {ds}"))
            continue
        if attribute_of(ds) is not None:  # what cannot run on this data, said (MNIST has no attribute at all)
            not_run += [
                NotRun(f"{a} on {ds}", why_unmet(attack_class(a).unmet(_available(ds))))
                for a in attacks
                if attack_class(a).unmet(_available(ds))
            ]
        stages += _Sweep(preset, settings, ds, attacks).stages()
    stages.append(cost_stage())
    if preset.scaling:
        if settings.data_root is None:
            raise ObfauditError("the scaling study needs an image folder: pass --data-root DIR")
        stages.append(scaling_stage(preset, settings))
    else:
        not_run.append(
            NotRun(
                "scaling study (fig12: ResNet50 with LightNet and DenseNet at 224x224x3)",
                "it needs an image folder such as ImageNette: run the imagenette preset with --data-root DIR",
            )
        )
    return stages, not_run


@dataclass
class _Sweep:
    """The stages of one dataset's sweep: its InfNet, the judge of its attribute, each ObfNet and the
    audit of each (the attacks on it and on the controls: :mod:`obfaudit.audit.plan`'s stages)."""

    preset: Preset
    settings: RunSettings
    ds: str
    attacks: tuple[str, ...]

    @property
    def data(self) -> dict:
        p, ds = self.preset, self.ds
        digits = {
            "source": "full-mnist" if p.full_mnist else "embedded-5k",
            "seed": self.settings.seed,
            "n_train": p.n_train,
            "n_test": p.n_test,
        }
        return {**digits, "source": "generated", "size": p.size} if dataset_spec(ds).sized else digits

    @property
    def gpu(self) -> Resources:
        return Resources(cpus=1, gpus=1 if self.settings.device.startswith("cuda") else 0)

    def stages(self) -> list[Stage]:
        p, ds = self.preset, self.ds
        stages = [self._infnet()]
        judge = self._judge()
        stages += [judge] if judge else []
        for (arch, n), defence in ((s, d) for s in sweep(p, ds) for d in defences_for(p, ds)):
            obfnet = self._obfnet(arch, n, defence)
            stages.append(obfnet)
            stages += self._audit(obfnet, arch, n, defence, judge)
        for subject, random in self._controls():
            stages += self._audit_control(subject, random, judge)
        return stages

    def _infnet(self) -> Stage:
        p = self.preset
        return Stage(
            f"infnet-{self.ds}",
            run_infnet,
            settings={
                "dataset": self.ds,
                "data": self.data,
                "arch": "cnn",
                "epochs": p.infnet_epochs,
                "precision": p.precision,
                "patience": p.model_patience,
                **_schedule(p),
            },
            about={"kind": "infnet", "dataset": self.ds, "arch": "cnn"},
            version=3,  # 3: the reference (Keras) initialisation
            outputs=("model", "sha256"),
            valid=model_ok,
            resources=self.gpu,
            cost=6.0,
        )

    def _judge(self) -> Stage | None:
        """The judge of the attribute on reconstructions: only where an image attack runs."""
        p, ds, attribute = self.preset, self.ds, attribute_of(self.ds)
        subjects = [None, *sweep(p, ds)]  # the controls and every ObfNet: each has its own attacks
        if attribute is None or not any(
            attack_class(a).output is Output.IMAGE
            for s in subjects
            for a in attacks_for(ds, self.attacks, p, s)
        ):
            return None
        # the attack networks' budget (its epochs, patience, precision, network kinds, least steps)
        settings = {"dataset": ds, "data": self.data, **_audit_settings(p, self.settings, (), ds)}
        return judge_stage(f"judge-{ds}", settings, {"dataset": ds, "attribute": attribute}, self.gpu, None)

    def _obfnet(self, arch: str, n: int, defence: dict | None) -> Stage:
        p, suffix = self.preset, subject_suffix(defence)
        return Stage(
            f"obfnet-{self.ds}-{arch}-b{n}{suffix}",
            run_obfnet,
            settings={
                "arch": arch,
                "bottleneck": n,
                "epochs": p.obfnet_epochs,
                "precision": p.precision,
                "patience": p.model_patience,
                "infnet_dropout": p.infnet_dropout,
                **_schedule(p),
                # a defended ObfNet's settings and about name its defence; the study's keep their keys
                **({"defence": defence} if defence else {}),
            },
            inputs={"infnet": f"infnet-{self.ds}"},
            about={"kind": "obfnet", **self._typed(arch, n, defence)},
            version=3,  # 3: the reference (Keras) initialisation
            outputs=("model", "sha256"),
            valid=model_ok,
            resources=self.gpu,
            cost=2.5,
        )

    def _typed(self, arch: str, n: int, defence: dict | None) -> dict:
        about = {"dataset": self.ds, "arch": arch, "bottleneck": n}
        return {**about, "defence": subject_suffix(defence)[1:]} if defence else about

    def _audit(
        self, obfnet: Stage, arch: str, n: int, defence: dict | None, judge: Stage | None
    ) -> list[Stage]:
        """The preset's attacks on one ObfNet, each a stage reading the ObfNet's model."""
        suffix = subject_suffix(defence)
        chosen = attacks_for(self.ds, self.attacks, self.preset, (arch, n))
        name, row = f"obfnet-{arch}-b{n}{suffix}", f"audit-{self.ds}-{arch}-b{n}{suffix}"
        about = {"subject": name, "main": True, "attacks": chosen, "attribute": attribute_of(self.ds)}
        guard = {"defence": defence} if defence else {}

        def stage(attack: str, inputs: dict[str, str]) -> Stage:
            return attack_stage(
                f"{row}-{safe_name(attack, 'attack')}",
                attack,
                {**_audit_settings(self.preset, self.settings, (attack,), self.ds), **guard},
                {**inputs, "subject": obfnet.name, "infnet": f"infnet-{self.ds}"},
                {**about, "id": f"{row}/{attack}", **self._typed(arch, n, defence)},
                self.gpu,
            )

        return subject_stages(chosen, judge.name if judge else None, stage)

    def _controls(self) -> list[tuple[str, list | None]]:
        """The controls: identity, null and, where the preset asks, one random-weights control per
        architecture at the sweep's largest bottleneck."""
        subjects: list[tuple[str, list | None]] = [(n, None) for n in CONTROLS]
        if self.preset.random_controls:
            done = sweep(self.preset, self.ds)
            for arch, n in sorted({(a, max(n for b, n in done if b == a)) for a, _ in done}):
                subjects.append((f"random-weights-{arch}-b{n}", [arch, n]))
        return subjects

    def _audit_control(self, name: str, random: list | None, judge: Stage | None) -> list[Stage]:
        """The preset's attacks (but the embeddings) on one control."""
        chosen = tuple(
            a
            for a in attacks_for(self.ds, self.attacks, self.preset, None)
            if attack_class(a).output is not Output.EMBEDDING
        )
        about = {"subject": name, "main": False, "attacks": chosen, "dataset": self.ds}

        def stage(attack: str, inputs: dict[str, str]) -> Stage:
            settings = {
                "data": self.data,
                **_audit_settings(self.preset, self.settings, (attack,), self.ds),
                "name": name,
                **({"random": random} if random else {}),
            }
            return attack_stage(
                f"control-{self.ds}-{name}-{safe_name(attack, 'attack')}",
                attack,
                settings,
                {**inputs, "infnet": f"infnet-{self.ds}"},
                {**about, "id": f"controls-{self.ds}/{name}/{attack}", "attribute": attribute_of(self.ds)},
                self.gpu,
            )

        return subject_stages(chosen, judge.name if judge else None, stage)


__all__ = ["NotRun", "attacks_for", "plan", "sweep"]
