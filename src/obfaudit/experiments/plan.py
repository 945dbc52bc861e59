"""The plan of a reproduction: which stages, with which settings, depending on which.

:func:`plan` turns a preset into stages (see :mod:`.stages`):

1. ``infnet-<data>``: InfNet-CNN on MNIST and on Colored-MNIST.
2. ``obfnet-<data>-<arch>-b<N>``: an ObfNet per architecture and bottleneck.
3. ``audit-<data>-<arch>-b<N>``: the preset's attacks on that ObfNet (on MNIST only those
   that need no attribute; the embedding attacks only on the preset's t-SNE ObfNets).
4. ``controls-<data>``: the same attacks on the identity and null transforms.
5. ``cost`` and, with an image folder, ``scaling`` (the 224x224x3 study).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors

from obfaudit._io import atomic_write_bytes
from obfaudit.attacks import Output, attack_class
from obfaudit.attacks.prepare import (
    AttackBudget,
    PreparedAudit,
    audit_config,
    config_settings,
    control_transforms,
)
from obfaudit.data import COLOUR, dataset_spec
from obfaudit.defences import DEFENCES, defence_from_dict, get_defence
from obfaudit.errors import ObfauditError
from obfaudit.experiments.context import DATASET_LABELS, PROXIES, RunContext, RunSettings
from obfaudit.experiments.presets import Preset
from obfaudit.experiments.stages import Resources, Stage, artifacts_ok
from obfaudit.experiments.steps import fit_infnet, fit_obfnet, task_of
from obfaudit.models import Role, load_model, model_for, model_id, read_sidecar, save_model
from obfaudit.threat import ANY_PROXY, GRADIENTS, TRAFFIC, TRAIN, TRANSFORM, Need, why_unmet
from obfaudit.threat import ATTRIBUTE as ATTRIBUTE_NEED
from obfaudit.train import predict

#: The study's sensitive attribute and task label.
ATTRIBUTE = COLOUR  # the study's


def attribute_of(ds: str) -> str | None:
    """The sensitive attribute a sweep on ``ds`` audits: the study's colour where the data has it, else
    the dataset's first attribute (hue on shapes); None for data without one (MNIST)."""
    labels = DATASET_LABELS[ds]
    if ATTRIBUTE in labels:
        return ATTRIBUTE
    attributes = dataset_spec(ds).attributes
    return attributes[0] if attributes else None


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


def _model_ok(ctx: RunContext, record: dict) -> bool:
    """The model file loads and is the one the record made (same SHA-256)."""
    try:
        _, info = load_model(ctx.out / record["result"]["model"])
        return info["sha256"] == record["result"]["sha256"]
    except (ObfauditError, KeyError, TypeError):
        return False


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
    ds = stage.about["dataset"]
    p = ctx.preset
    train, test = ctx.data(ds)
    path = ctx.models / f"infnet-cnn-{ds}"
    model, metrics = fit_infnet("cnn", train, test, ctx.model_config(p.infnet_epochs))
    return _saved(ctx, model, path, ds, metrics)


def run_obfnet(ctx: RunContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    ds, arch, n = stage.about["dataset"], stage.about["arch"], stage.about["bottleneck"]
    p = ctx.preset
    train, test = ctx.data(ds)
    infnet = _load(ctx, inputs["infnet"])
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


def attack_budget(preset: Preset) -> AttackBudget:
    """How the preset's attack networks train."""
    return AttackBudget(
        epochs=preset.attack_epochs,
        patience=preset.attack_patience,
        proxy_epochs=preset.proxy_epochs,
        proxy_patience=1 if preset.attack_patience else None,
        precision=preset.precision,
        nets=preset.attack_nets,
        min_steps=preset.min_steps,
    )


def _prepared(
    ctx: RunContext, ds: str, attacks: tuple[str, ...], infnet=None, *, proxies: bool = True
) -> PreparedAudit:
    """The audit of ``attacks`` on ``ds`` as the preset sizes it (its proxies when it has the
    attribute and ``proxies`` is asked for)."""
    p = ctx.preset
    train, test = ctx.data(ds)
    attribute = attribute_of(ds) or ATTRIBUTE
    config = audit_config(
        attacks,
        attribute=attribute,
        task=task_of(ds),
        budget=attack_budget(p),
        seed=ctx.seed,
        device=ctx.device,
        tsne_points=p.tsne_points,
        progress=ctx.progress,
    )
    own = ctx.proxies(test, attribute) if proxies and attribute_of(ds) == ATTRIBUTE else {}
    return PreparedAudit(train, test, attribute, task_of(ds), own, config, infnet=infnet)


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


def _save_artifacts(path: Path, artifacts: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(artifacts.items())}
    atomic_write_bytes(path, save_safetensors(tensors))  # a unique temporary name, then a rename


def _load(ctx: RunContext, record: dict | None, role: Role | None = None):
    """The model a stage record saved (None for no record)."""
    if record is None:
        return None
    return load_model(ctx.out / record["result"]["model"], device=ctx.device, role=role)[0]


def run_sweep_judge(ctx: RunContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    ds = stage.about["dataset"]
    prepared = _prepared(ctx, ds, (), proxies=False)  # the judge trains on the clean training split alone
    judge = prepared.train_judge()
    test, attribute = prepared.test, prepared.attribute
    acc = float(
        (predict(judge, test.x, device=ctx.device).argmax(1).cpu() == test.labels[attribute]).float().mean()
    )
    return _saved(ctx, judge.cpu(), ctx.models / f"judge-{attribute}-{ds}", ds, {"clean_test_acc": acc})


def run_obfnet_audit(ctx: RunContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    """The preset's attacks on one ObfNet (inputs: its ``obfnet``, the ``infnet``, the ``judge``)."""
    ds, arch, n = stage.about["dataset"], stage.about["arch"], stage.about["bottleneck"]
    suffix = subject_suffix(stage.settings.get("defence"))
    infnet = _load(ctx, inputs["infnet"], Role.INFNET)
    prepared = _prepared(ctx, ds, tuple(stage.settings["attacks"]), infnet=infnet)
    obfnet = _load(ctx, inputs["obfnet"], Role.OBFUSCATOR)
    res = prepared.audit(f"obfnet-{arch}-b{n}{suffix}", obfnet, judge=_load(ctx, inputs.get("judge")))
    art = ctx.artifacts / f"{stage.name}.safetensors"
    _save_artifacts(art, res.artifacts)
    return {
        "subject": res.subject,
        "records": [r.to_dict() for r in res.records],
        "skipped": res.skipped,
        "verdict": res.verdict,
        "artifacts": str(art.relative_to(ctx.out)),
    }


def run_controls(ctx: RunContext, stage: Stage, inputs: Mapping[str, dict]) -> dict:
    """The preset's attacks on the controls: identity, null and each ObfNet architecture with random
    weights (inputs: the ``infnet`` and the ``judge``)."""
    ds = stage.about["dataset"]
    prepared = _prepared(ctx, ds, tuple(stage.settings["attacks"]), infnet=_load(ctx, inputs["infnet"]))
    judge = _load(ctx, inputs.get("judge"))
    shape = prepared.test.shape
    controls = control_transforms(
        seed=ctx.seed,
        random={
            f"random-weights-{arch}-b{n}": (
                model_for(Role.OBFUSCATOR, arch),
                {"input_shape": shape, "bottleneck": n},
            )
            for arch, n in stage.settings.get("random_weights", [])
        },
    )
    records, verdicts, skipped = [], {}, {}
    for name, make in controls.items():
        res = prepared.audit(name, make(), judge=judge)
        records += [r.to_dict() for r in res.records]
        verdicts[name] = res.verdict
        skipped.update(res.skipped)
    out = {"records": records, "verdicts": verdicts, "skipped": skipped}
    if prepared.attribute in prepared.test.labels:
        out["baselines"] = prepared.baselines.to_dict()
    return out


# ----------------------------------------------------------------------------- the plan


def plan(preset: Preset, settings: RunSettings) -> tuple[list[Stage], list[NotRun]]:
    """The stages of ``preset`` in dependency order, and the parts it leaves out (and why)."""
    from obfaudit.experiments.scaling import cost_stage, scaling_stage

    attacks = settings.attacks or preset.attacks
    for name in attacks:
        attack_class(name)
    stages: list[Stage] = []
    not_run: list[NotRun] = []
    digits = {
        "source": "full-mnist" if preset.full_mnist else "embedded-5k",
        "seed": settings.seed,
        "n_train": preset.n_train,
        "n_test": preset.n_test,
    }
    gpu = Resources(cpus=1, gpus=1 if settings.device.startswith("cuda") else 0)
    for ds in preset.datasets:
        data = {**digits, "source": "generated", "size": preset.size} if dataset_spec(ds).sized else digits
        if not _active(preset, ds):
            not_run.append(NotRun(f"{ds} sweep", f"preset {preset.name!r} trains no ObfNets on {ds}"))
            continue
        if attribute_of(ds) is not None:  # what cannot run on this data, said (MNIST has no attribute at all)
            not_run += [
                NotRun(f"{a} on {ds}", why_unmet(attack_class(a).unmet(_available(ds))))
                for a in attacks
                if attack_class(a).unmet(_available(ds))
            ]
        inf = f"infnet-{ds}"
        stages.append(
            Stage(
                inf,
                run_infnet,
                settings={
                    "dataset": ds,
                    "data": data,
                    "arch": "cnn",
                    "epochs": preset.infnet_epochs,
                    "precision": preset.precision,
                    "patience": preset.model_patience,
                    **_schedule(preset),
                },
                about={"kind": "infnet", "dataset": ds, "arch": "cnn"},
                version=3,  # 3: the reference (Keras) initialisation
                outputs=("model", "sha256"),
                valid=_model_ok,
                resources=gpu,
                cost=6.0,
            )
        )
        judge = {}
        subjects = [None, *sweep(preset, ds)]  # the controls and every ObfNet: each has its own attacks
        attribute = attribute_of(ds)
        if attribute is not None and any(
            attack_class(a).output is Output.IMAGE
            for s in subjects
            for a in attacks_for(ds, attacks, preset, s)
        ):  # the judge reads the attribute from reconstructions: only needed when an image attack runs
            judge = {"judge": f"judge-{ds}"}
            stages.append(
                Stage(
                    judge["judge"],
                    run_sweep_judge,
                    settings={
                        "dataset": ds,
                        "data": data,
                        "attribute": attribute,
                        "epochs": preset.attack_epochs,
                        "patience": preset.attack_patience,
                        "precision": preset.precision,
                    },
                    about={"kind": "judge", "dataset": ds, "attribute": attribute},
                    version=1,
                    outputs=("model", "sha256"),
                    valid=_model_ok,
                    resources=gpu,
                )
            )
        for (arch, n), defence in ((s, d) for s in sweep(preset, ds) for d in defences_for(preset, ds)):
            suffix = subject_suffix(defence)
            obf = f"obfnet-{ds}-{arch}-b{n}{suffix}"
            about = {"dataset": ds, "arch": arch, "bottleneck": n}
            # a defended ObfNet's settings and about name its defence; the study's keep their keys
            guard = {"defence": defence} if defence else {}
            if defence:
                about["defence"] = suffix[1:]
            stages.append(
                Stage(
                    obf,
                    run_obfnet,
                    settings={
                        "arch": arch,
                        "bottleneck": n,
                        "epochs": preset.obfnet_epochs,
                        "precision": preset.precision,
                        "patience": preset.model_patience,
                        "infnet_dropout": preset.infnet_dropout,
                        **_schedule(preset),
                        **guard,
                    },
                    inputs={"infnet": inf},
                    about={"kind": "obfnet", **about},
                    version=3,  # 3: the reference (Keras) initialisation
                    outputs=("model", "sha256"),
                    valid=_model_ok,
                    resources=gpu,
                    cost=2.5,
                )
            )
            chosen = attacks_for(ds, attacks, preset, (arch, n))
            stages.append(
                Stage(
                    f"audit-{ds}-{arch}-b{n}{suffix}",
                    run_obfnet_audit,
                    settings={**_audit_settings(preset, settings, chosen, ds), **guard},
                    inputs={"obfnet": obf, "infnet": inf, **judge},
                    about={
                        "kind": "audit",
                        **about,
                        "attribute": attribute,
                    },
                    version=3,
                    outputs=("records", "artifacts"),
                    valid=artifacts_ok,
                    resources=gpu,
                    cost=_audit_cost(chosen),
                )
            )
        controls = tuple(
            a
            for a in attacks_for(ds, attacks, preset, None)
            if attack_class(a).output is not Output.EMBEDDING
        )
        stages.append(
            Stage(
                f"controls-{ds}",
                run_controls,
                settings={
                    "data": data,
                    **_audit_settings(preset, settings, controls, ds),
                    # one random-weights control per architecture, at the sweep's largest bottleneck
                    "random_weights": sorted(
                        {(a, max(n for b, n in sweep(preset, ds) if b == a)) for a, _ in sweep(preset, ds)}
                    )
                    if preset.random_controls
                    else [],
                },
                inputs={"infnet": inf, **judge},
                about={
                    "kind": "controls",
                    "dataset": ds,
                    "attribute": attribute,
                },
                version=4,  # 4: random-weights controls drawn with the reference initialisation
                outputs=("records",),
                resources=gpu,
                cost=(2 + len({a for a, _ in sweep(preset, ds)})) * _audit_cost(controls) / 2,
            )
        )
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


def _audit_cost(attacks: tuple[str, ...]) -> float:
    """Rough run time of auditing one subject, in units of ~4 s here: one per attack, five more
    per slow one (measured: 6 study attacks ~27 s, with decoder and inversion-decoder ~95 s)."""
    return 1.0 + len(attacks) + 5.0 * sum(attack_class(a).slow for a in attacks)


__all__ = ["NotRun", "attack_budget", "attacks_for", "plan", "sweep"]
