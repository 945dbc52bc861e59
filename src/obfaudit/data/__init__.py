"""Datasets: MNIST, Colored-MNIST, the adversary's proxies and image folders."""

from __future__ import annotations

from pathlib import Path

from obfaudit.data.base import COLOUR_NAMES, PALETTE, PALETTE_TENSOR, ImageSet, ProxySet, balanced_labels
from obfaudit.data.imagefolder import image_folder_dataset, load_image_folder, resnet_preprocess
from obfaudit.data.mnist import load_embedded_mnist, load_full_mnist, load_mnist
from obfaudit.data.synthetic import (
    DEFAULT_PROXY_SIZE,
    colorize,
    make_colored,
    make_noisy,
    make_path,
)

DATASETS = ("mnist", "colored-mnist", "noisy", "path", "imagefolder")
PROXY_DATASETS = ("noisy", "path")
# The colour assignment uses its own stream so that it does not move when the split does.
_COLOUR_SEED_OFFSET = 7919


def load_colored_mnist(
    split: str, *, seed: int = 0, data_root: str | Path | None = None, download: bool = False
) -> ImageSet:
    """Colored-MNIST built on :func:`load_mnist` with the same seed."""
    mnist = load_mnist(split, seed=seed, data_root=data_root, download=download)
    split_offset = 0 if split == "train" else 1
    return make_colored(mnist, seed=seed * 2 + split_offset + _COLOUR_SEED_OFFSET)


def load_proxy(name: str, *, seed: int = 0, n: int = DEFAULT_PROXY_SIZE) -> ProxySet:
    """An adversary proxy dataset (``noisy`` or ``path``), its images stored as bytes."""
    if name == "noisy":
        return make_noisy(n, seed=seed).as_uint8()
    if name == "path":
        return make_path(n, seed=seed).as_uint8()
    raise ValueError(f"unknown proxy dataset {name!r}; choose from {PROXY_DATASETS}")


def load_dataset(
    name: str,
    *,
    split: str = "train",
    seed: int = 0,
    n: int | None = None,
    data_root: str | Path | None = None,
    download: bool = False,
) -> ImageSet:
    """Any dataset by name; ``n`` keeps the first n images (proxies: generates n)."""
    if name == "mnist":
        ds = load_mnist(split, seed=seed, data_root=data_root, download=download)
    elif name == "colored-mnist":
        ds = load_colored_mnist(split, seed=seed, data_root=data_root, download=download)
    elif name in PROXY_DATASETS:
        return load_proxy(name, seed=seed, n=DEFAULT_PROXY_SIZE if n is None else n)
    elif name == "imagefolder":
        if data_root is None:
            from obfaudit.errors import DataError

            raise DataError("imagefolder needs --data-root DIR with train/ and val/ class folders")
        return load_image_folder(data_root, split, n=n, seed=seed)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return ds if n is None else ds.subset(slice(0, n))


__all__ = [
    "COLOUR_NAMES",
    "DATASETS",
    "DEFAULT_PROXY_SIZE",
    "PALETTE",
    "PALETTE_TENSOR",
    "PROXY_DATASETS",
    "ProxySet",
    "ImageSet",
    "balanced_labels",
    "colorize",
    "image_folder_dataset",
    "load_colored_mnist",
    "load_dataset",
    "load_embedded_mnist",
    "load_full_mnist",
    "load_image_folder",
    "load_mnist",
    "load_proxy",
    "make_colored",
    "make_noisy",
    "make_path",
    "resnet_preprocess",
]
