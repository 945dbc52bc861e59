"""Write full-size MNIST IDX files (60,000 / 10,000 images) built from the embedded 5k subset.

For timing the ``paper`` preset on a machine that cannot download MNIST: the embedded 4,000
training and 1,000 test images are repeated to full MNIST's sizes and written in the IDX
format under ``ROOT/MNIST/raw``, where ``obfaudit reproduce --preset paper --data-root ROOT``
reads them. The numbers of such a run mean nothing about MNIST (the images repeat); its
wall times are those of the full-size study.

    python benchmarks/make_idx.py ROOT
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

from obfaudit.data.mnist import load_embedded_mnist

SIZES = {"train": 60_000, "t10k": 10_000}


def write_idx(path: Path, array: np.ndarray) -> None:
    """One IDX file: magic (0, 0, type 0x08 = unsigned byte, number of dimensions), sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    args = ap.parse_args()
    raw = args.root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        data = load_embedded_mnist(split)
        rows = np.resize(np.arange(len(data)), SIZES[prefix])  # repeat the subset to the full size
        images = (data.x[:, 0].numpy()[rows] * 255).round().astype(np.uint8)
        labels = data.labels["digit"].numpy()[rows].astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        print(f"{prefix}: {len(images)} images from {len(data)} embedded ones -> {raw}")


if __name__ == "__main__":
    main()
