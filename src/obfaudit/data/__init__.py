"""Datasets: MNIST, Colored-MNIST, the adversary's proxies and image folders.

Each built-in dataset registers itself (:mod:`.registry`) in its own module, imported here.
"""

from __future__ import annotations

from pathlib import Path

from obfaudit.data.base import (
    COLOUR,
    COLOUR_NAMES,
    PALETTE,
    PALETTE_TENSOR,
    ImageSet,
    ProxySet,
    balanced_labels,
)
from obfaudit.data.colored_mnist import load_colored_mnist
from obfaudit.data.imagefolder import image_folder_dataset, load_image_folder, resnet_preprocess
from obfaudit.data.mnist import load_embedded_mnist, load_full_mnist, load_mnist
from obfaudit.data.photos import load_photos, make_photos
from obfaudit.data.registry import (
    DatasetSpec,
    ProxySpec,
    dataset_names,
    dataset_spec,
    proxy_names,
    proxy_spec,
    register_dataset,
    register_proxy,
)
from obfaudit.data.shapes import load_shapes, make_shapes
from obfaudit.data.synthetic import (
    DEFAULT_PROXY_SIZE,
    colorize,
    make_colored,
    make_noisy,
    make_path,
)


def load_proxy(name: str, *, seed: int = 0, n: int | None = None) -> ProxySet:
    """A generated proxy dataset (``noisy`` or ``path``), its images stored as bytes."""
    spec = proxy_spec(name)
    return spec.make(spec.default_n if n is None else n, seed=seed)


def load_dataset(
    name: str,
    *,
    split: str = "train",
    seed: int = 0,
    n: int | None = None,
    data_root: str | Path | None = None,
    download: bool = False,
    size: int | None = None,
) -> ImageSet:
    """Any registered dataset or proxy by name; ``n`` keeps the first n images (proxies and
    generated sets: generates n; an image folder: a seeded sample of n); ``size`` is the side
    of a generated set's images."""
    if name in proxy_names():
        return load_proxy(name, seed=seed, n=n)
    spec = dataset_spec(name)
    kw = {"size": size} if spec.sized else {}
    return spec.load(split, seed=seed, data_root=data_root, download=download, n=n, **kw)


def all_dataset_names() -> tuple[str, ...]:
    """Every dataset and proxy ``obfaudit data`` can show."""
    return dataset_names() + proxy_names()


__all__ = [
    "COLOUR",
    "COLOUR_NAMES",
    "DEFAULT_PROXY_SIZE",
    "PALETTE",
    "PALETTE_TENSOR",
    "DatasetSpec",
    "ImageSet",
    "ProxySet",
    "ProxySpec",
    "all_dataset_names",
    "balanced_labels",
    "colorize",
    "dataset_names",
    "dataset_spec",
    "image_folder_dataset",
    "load_colored_mnist",
    "load_dataset",
    "load_embedded_mnist",
    "load_full_mnist",
    "load_image_folder",
    "load_mnist",
    "load_proxy",
    "load_photos",
    "load_shapes",
    "make_photos",
    "make_shapes",
    "make_colored",
    "make_noisy",
    "make_path",
    "proxy_names",
    "proxy_spec",
    "register_dataset",
    "register_proxy",
    "resnet_preprocess",
]
