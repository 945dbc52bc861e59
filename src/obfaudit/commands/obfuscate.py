"""``obfaudit obfuscate``: test originals above what an ObfNet sends for them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from obfaudit.commands._base import Command, Interface, OutputPath, Result, check_outputs, json_option, pick
from obfaudit.commands._options import add, registered, trainable_datasets
from obfaudit.commands.data import Figure


@dataclass(frozen=True, kw_only=True)
class ObfuscateJob:
    """Settings of ``obfaudit obfuscate``."""

    obfnet: Path
    """Saved ObfNet (.safetensors with its .json)."""
    data: str | None = None
    """Dataset: mnist or colored-mnist (default: the one the ObfNet was trained on)."""
    n: int = 10
    """Number of test images."""
    seed: int = 0
    """Seeds the train/test split (use the ObfNet's to see its own test images)."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto."""
    data_root: Path | None = None
    """Directory with full MNIST (MNIST/raw/*-ubyte); default: the embedded 5,000-image MNIST subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    out: Path = Path(".")
    """Directory for the PNG (named after the ObfNet)."""

    def figure(self) -> Path:
        return self.out / f"obfuscated-{Path(self.obfnet).with_suffix('').name}.png"


def obfuscate(job: ObfuscateJob) -> Figure:
    """A PNG of test originals above their obfuscations."""
    from obfaudit._io import resolve_device
    from obfaudit.data import load_dataset
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.models import Role, load_model
    from obfaudit.report.figures import image_rows
    from obfaudit.transforms import apply_transform

    device = str(resolve_device(job.device))
    check_outputs([OutputPath(job.out, "--out"), OutputPath(job.figure(), "--out", is_dir=False)])
    model, info = load_model(job.obfnet, device=device, role=Role.OBFUSCATOR)
    data = load_dataset(
        job.data or info.get("dataset", "colored-mnist"),
        split="test",
        seed=job.seed,
        n=job.n,
        data_root=job.data_root,
        download=job.download,
    )
    check_model_fits(info, data, what=f"--obfnet {job.obfnet}")
    z = apply_transform(model, data.x, device=device)
    image_rows(
        [data.x, z],
        job.figure(),
        row_labels=["original", "obfuscated"],
        title=f"{info['arch']} {info.get('kwargs', {})} on {data.name}",
    )
    return Figure(str(job.figure()), len(data))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(
        p,
        ObfuscateJob,
        ["obfnet", "data", "n", "seed", "device", "data_root", "download", "out"],
        obfnet={"required": True},
        data={"type": registered(trainable_datasets, "dataset"), "metavar": "DATASET"},
    )
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    return obfuscate(pick(args, ObfuscateJob))


COMMAND = Command(
    "obfuscate",
    "show originals and their obfuscations (figures 7-8)",
    "Write a PNG: test originals above, their obfuscations below.",
    add_arguments,
    run,
)
