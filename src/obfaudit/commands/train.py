"""``obfaudit train infnet|obfnet``: train and save the study's networks."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from obfaudit.commands._base import Command, Interface, OutputPath, Result, check_outputs, json_option, pick
from obfaudit.commands._options import add, non_negative_float, registered, trainable_datasets
from obfaudit.errors import ObfauditError
from obfaudit.train_config import TrainConfig

TRAINING = ["epochs", "batch_size", "lr", "schedule", "precision", "patience", "shift", "seed", "device"]
ARCHS = ("cnn", "mlp")


def _defences() -> tuple[str, ...]:
    from obfaudit.defences import defence_names

    return defence_names()


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    """Settings of ``obfaudit train``."""

    arch: str = "cnn"
    """Architecture: cnn or mlp."""
    data: str | None = None
    """Dataset: mnist, colored-mnist or shapes (an ObfNet's default: the one its InfNet was trained on)."""
    size: int | None = None
    """Pixels per side of a generated dataset (shapes; default 64, an ObfNet's: its InfNet's)."""
    bottleneck: int | None = None
    """ObfNet bottleneck width N (> 0)."""
    infnet: Path | None = None
    """Saved InfNet (.safetensors with its .json) the ObfNet trains through; its train/test split
    (its seed) is used."""
    infnet_dropout: bool = False
    """Keep InfNet's dropout active while training the ObfNet (the reference Keras behaviour)."""
    defence: str = "none"
    """How the ObfNet is defended: none, noise (sigma), dcor (NoPeek, lambda), adversarial or
    adversarial-ensemble (lambda), invariance (lambda)."""
    strength: float = 0.0
    """The defence's strength: its weight lambda, or the noise scale sigma."""
    attribute: str | None = None
    """The sensitive attribute a defence trains against (default: the dataset's first: colour on
    Colored-MNIST, hue on shapes)."""
    counterfactual: str | None = None
    """For --defence invariance: MODULE:CALLABLE, a function (images, target attribute) -> the same images
    with that attribute (built in for Colored-MNIST's colour: recolouring)."""
    data_root: Path | None = None
    """Directory with full MNIST (MNIST/raw/*-ubyte); default: the embedded 5,000-image MNIST subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    out: Path = Path(".")
    """Directory for the saved model."""
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class TrainedModel(Result):
    """A model trained and saved, with its metrics (flattened into the JSON)."""

    model: str
    dataset: str
    arch: str
    bottleneck: int | None = None
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = super().to_dict()
        metrics = d.pop("metrics")
        if self.bottleneck is None:
            d.pop("bottleneck")
        return {**d, **metrics}

    def summary(self) -> str:
        pct = lambda v: "n/a" if v is None else f"{v:.2%}"  # noqa: E731
        epochs = self.metrics["fit"]["epochs_run"]
        if self.bottleneck is None:
            return (
                f"InfNet-{self.arch.upper()} on {self.dataset}: clean test accuracy "
                f"{pct(self.metrics.get('clean_test_acc'))} after {epochs} epochs -> {self.model}"
            )
        clean = pct(self.metrics.get("clean_test_acc"))
        return (
            f"ObfNet-{self.arch.upper()}(N={self.bottleneck}) on {self.dataset}: obfuscated test accuracy "
            f"{pct(self.metrics.get('obfuscated_test_acc'))} (clean {clean}) -> {self.model}"
        )


def _splits(job: TrainJob, dataset: str, seed: int, size: int | None = None):
    from obfaudit.data import dataset_spec, load_dataset

    kw = {"seed": seed, "data_root": job.data_root, "download": job.download}
    size = job.size or size
    if dataset_spec(dataset).sized:
        kw["size"] = size
    elif job.size:
        raise ObfauditError(f"--size is for generated datasets (shapes), not {dataset}")
    return load_dataset(dataset, split="train", **kw), load_dataset(dataset, split="test", **kw)


def train_infnet(job: TrainJob) -> TrainedModel:
    """Train an InfNet on the clean digit task and save it."""
    from obfaudit._io import resolve_device
    from obfaudit.experiments.steps import fit_infnet
    from obfaudit.models import Role, model_for, model_id, save_model

    resolve_device(job.train.device)
    check_outputs([OutputPath(job.out, "--out")])
    dataset = job.data or "colored-mnist"
    train, test = _splits(job, dataset, job.train.seed)
    model, metrics = fit_infnet(job.arch, train, test, job.train)
    path = save_model(
        model,
        job.out / f"{model_id(model_for(Role.INFNET, job.arch))}-{dataset}",
        dataset=dataset,
        seed=job.train.seed,
        epochs=metrics["fit"]["epochs_run"],
        train_config=job.train.to_dict(),
        metrics=metrics,
    )
    return TrainedModel(str(path), dataset, job.arch, metrics=metrics)


def train_obfnet(job: TrainJob) -> TrainedModel:
    """Train an ObfNet through a frozen InfNet on the InfNet's own split, and save it."""
    from obfaudit._io import resolve_device
    from obfaudit.data import COLOUR, dataset_spec
    from obfaudit.defences import get_defence
    from obfaudit.experiments.steps import check_model_fits, fit_obfnet
    from obfaudit.models import Role, load_model, model_for, model_id, read_sidecar, save_model

    resolve_device(job.train.device)
    if job.infnet is None or job.bottleneck is None:
        raise ObfauditError("train obfnet needs --infnet and --bottleneck")
    check_outputs([OutputPath(job.out, "--out")])
    info = read_sidecar(job.infnet, role=Role.INFNET)
    dataset = job.data or info.get("dataset")
    if dataset not in trainable_datasets():
        raise ObfauditError(
            f"--infnet {job.infnet} names no dataset; pass --data {'|'.join(trainable_datasets())}"
        )
    # The InfNet's own split: with another seed, its training images would be in the test split.
    shape = info.get("input_shape") or [None]
    train, test = _splits(job, dataset, info.get("seed", job.train.seed), size=shape[-1])
    check_model_fits(info, train, what=f"--infnet {job.infnet}")
    if job.defence == "none" and job.strength:
        raise ObfauditError(
            "--strength needs --defence (" + ", ".join(d for d in _defences() if d != "none") + ")"
        )
    attribute = job.attribute or (dataset_spec(dataset).attributes or (COLOUR,))[0]
    if job.attribute and attribute not in train.labels:
        raise ObfauditError(
            f"--attribute {attribute}: {dataset} has {', '.join(dataset_spec(dataset).attributes) or 'none'}"
        )
    options = {"counterfactual": job.counterfactual}
    if job.defence == "invariance":
        options["attribute"] = attribute
    defence = get_defence(job.defence, job.strength, **options)
    infnet, _ = load_model(job.infnet, role=Role.INFNET)
    model, metrics = fit_obfnet(
        job.arch,
        job.bottleneck,
        infnet,
        train,
        test,
        job.train,
        infnet_dropout=job.infnet_dropout,
        defence=defence,
        attribute=attribute,
    )
    suffix = "" if defence.name == "none" else f"-{defence.label}"
    name = model_id(model_for(Role.OBFUSCATOR, job.arch), bottleneck=job.bottleneck)
    path = save_model(
        model,
        job.out / f"{name}{suffix}-{dataset}",
        defence=metrics.get("defence", defence.to_dict()),
        dataset=dataset,
        seed=job.train.seed,
        infnet=str(job.infnet),
        epochs=metrics["fit"]["epochs_run"],
        train_config=job.train.to_dict(),
        metrics=metrics,
    )
    return TrainedModel(str(path), dataset, job.arch, job.bottleneck, metrics)


def _add_training(p: argparse.ArgumentParser) -> None:
    from obfaudit.train_config import SCHEDULES

    add(p, TrainConfig, TRAINING, epochs={"default": 20}, schedule={"choices": SCHEDULES})
    add(p, TrainJob, ["data_root", "download", "out"], out={"required": True})
    json_option(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", required=True, metavar="{infnet,obfnet}")
    p = sub.add_parser(
        "infnet",
        help="train an inference network on the clean task",
        description="Train an InfNet (the server's classifier) on the clean task: the digit on MNIST, "
        "the shape on shapes.",
    )
    add(
        p,
        TrainJob,
        ["arch", "data", "size"],
        arch={"choices": ARCHS},
        data={
            "type": registered(trainable_datasets, "dataset"),
            "default": "colored-mnist",
            "metavar": "DATASET",
        },
    )
    _add_training(p)
    p = sub.add_parser(
        "obfnet",
        help="train an obfuscation network through a frozen InfNet",
        description="Train an ObfNet to minimise the frozen InfNet's loss on ObfNet(x).",
    )
    add(
        p,
        TrainJob,
        [
            "arch",
            "bottleneck",
            "infnet",
            "data",
            "size",
            "infnet_dropout",
            "defence",
            "strength",
            "attribute",
            "counterfactual",
        ],  # fmt: skip
        arch={"choices": ARCHS, "default": "mlp"},
        bottleneck={"required": True},
        infnet={"required": True},
        data={"type": registered(trainable_datasets, "dataset"), "metavar": "DATASET"},
        defence={"type": registered(_defences, "defence"), "metavar": "DEFENCE"},
        strength={"type": non_negative_float, "metavar": "X"},
        counterfactual={"metavar": "MODULE:CALLABLE"},
    )
    _add_training(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    config = pick(
        args,
        TrainConfig,
        patience=args.patience or None,
        val_fraction=0.1 if args.patience else 0.0,
        progress=ui.progress_bars,
    )
    job = pick(args, TrainJob, train=config)
    return train_infnet(job) if args.train_command == "infnet" else train_obfnet(job)


COMMAND = Command("train", "train and save a model", "Train and save a model.", add_arguments, run)
