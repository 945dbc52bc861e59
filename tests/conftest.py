"""Shared fixtures: small generated data, fixed seeds, a helper to run the CLI."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OBFAUDIT_NO_PROGRESS", "1")
# audits keep their controls in a cache shared by audits: one for this test session, never ~/.cache
os.environ["OBFAUDIT_CACHE"] = tempfile.mkdtemp(prefix="obfaudit-test-cache-")
os.environ.setdefault("MPLBACKEND", "Agg")
# audits and reproductions run their stages in this process: the test processes already fill the cores,
# and each worker process would start Python and torch again (tests/test_pool.py runs the workers)
os.environ.setdefault("OBFAUDIT_WORKERS", "1")
# two test processes share the 2 cores under `pytest -n 2` (make test): one thread each, else two
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads())
torch.set_num_threads(THREADS)
#: the environment of a subprocess this session starts: the same threads, so its sums round alike
SUBPROCESS_ENV = {"OBFAUDIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": str(THREADS)}


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    script: bool = False,
    env: dict | None = None,
    subprocess_: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``obfaudit ARGS`` and return its exit status, stdout and stderr.

    By default in this process (``obfaudit.cli.main``, stdout and stderr captured): the same
    parsing, checks and code as the console script, without starting Python and torch again.
    ``subprocess_`` runs ``python -m obfaudit.cli`` in a subprocess, as a user would; ``script``
    the installed console script (which, unlike ``python -m``, does not put the working
    directory on the import path). Use them where the process itself is under test.
    """
    if script or subprocess_:
        env = {**os.environ, **SUBPROCESS_ENV, **(env or {})}
        command = (
            [str(Path(sys.executable).parent / "obfaudit")]
            if script
            else [sys.executable, "-m", "obfaudit.cli"]
        )
        return subprocess.run(
            [*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
        )
    return _in_process([str(a) for a in args], cwd=cwd, env=env or {})


def _in_process(argv: list[str], *, cwd: Path | None, env: dict) -> subprocess.CompletedProcess:
    import contextlib
    import io

    from obfaudit.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in env}
    saved_cwd, saved_path, saved_modules = os.getcwd(), list(sys.path), set(sys.modules)
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: --help (0) and bad arguments (2)
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        # a user's module imported from a test's folder must not answer for another test's (only
        # those: the venv may lie under the same temporary folder, and torch's own modules must stay)
        folders = [str(cwd)] if cwd is not None else []
        folders.append(os.path.join(tempfile.gettempdir(), "pytest-of-"))
        for name in set(sys.modules) - saved_modules:
            f = getattr(sys.modules[name], "__file__", None) or ""
            if any(f.startswith(d) for d in folders) and not f.startswith(sys.prefix):
                del sys.modules[name]
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


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


def tiny_preset():
    """The smallest plan with every kind of stage: one ObfNet per dataset, two attacks, in seconds."""
    from dataclasses import replace

    from obfaudit.study.presets import get_preset

    return replace(
        get_preset("smoke"),
        name="tiny",
        bottlenecks=(8,),
        mnist_bottlenecks=(8,),
        archs=("mlp",),
        attacks=("recnet", "colornet", "noisynet"),
        tsne=(),
        slow_on=(),
        n_train=300,
        n_test=120,
        proxy_n=600,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """An uninterrupted serial run of the tiny plan: its folder and summary (copy it to change it)."""
    from obfaudit.study.context import RunSettings
    from obfaudit.study.reproduce import reproduce

    out = tmp_path_factory.mktemp("tiny") / "run"
    return out, reproduce(RunSettings(preset="smoke", out=out), preset=tiny_preset())
