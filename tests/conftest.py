"""Shared fixtures: small generated data, fixed seeds, a helper to run the CLI."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OBFAUDIT_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, script: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``obfaudit ARGS`` in a subprocess, as a user would.

    ``script`` runs the installed console script instead of ``python -m`` (which, unlike
    the script, puts the working directory on the import path).
    """
    env = {**os.environ, "OBFAUDIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "2", **(env or {})}
    command = (
        [str(Path(sys.executable).parent / "obfaudit")] if script else [sys.executable, "-m", "obfaudit.cli"]
    )
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (the MNIST format)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A tiny full-MNIST directory (IDX files in MNIST/raw) written by the test."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A tiny ImageNette-layout folder: 10 classes x 2 images in train/ and val/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imagenette"
    for split in ("train", "val"):
        for c in range(10):
            d = root / split / f"n0{c}"
            d.mkdir(parents=True)
            for i in range(2):
                arr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"img{i}.jpg")
    return root
