"""Colored-MNIST: every MNIST digit in one of seven palette colours, the study's sensitive attribute."""

from __future__ import annotations

from pathlib import Path

from obfaudit.data.base import COLOUR, COLOUR_NAMES, ImageSet
from obfaudit.data.mnist import load_mnist
from obfaudit.data.registry import DatasetSpec, register_dataset
from obfaudit.data.synthetic import make_colored

# The colour assignment uses its own stream so that it does not move when the split does.
_COLOUR_SEED_OFFSET = 7919


def load_colored_mnist(
    split: str, *, seed: int = 0, data_root: str | Path | None = None, download: bool = False
) -> ImageSet:
    """Colored-MNIST built on :func:`load_mnist` with the same seed."""
    mnist = load_mnist(split, seed=seed, data_root=data_root, download=download)
    split_offset = 0 if split == "train" else 1
    return make_colored(mnist, seed=seed * 2 + split_offset + _COLOUR_SEED_OFFSET)


def _load(split: str, *, seed: int, data_root=None, download: bool = False, n: int | None = None) -> ImageSet:
    ds = load_colored_mnist(split, seed=seed, data_root=data_root, download=download)
    return ds if n is None else ds.subset(slice(0, n))


register_dataset(
    DatasetSpec(
        "colored-mnist",
        _load,
        f"MNIST digits in {len(COLOUR_NAMES)} palette colours (the study's sensitive attribute: colour)",
        task="digit",
        attributes=(COLOUR,),
        trainable=True,
    )
)
