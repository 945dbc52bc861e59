"""Small shared helpers: atomic writes, JSON, seeding, devices.

Light to import: torch and numpy are imported where a helper needs them, so the command
line builds its parser (and prints --help) without loading them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obfaudit.errors import ObfauditError

if TYPE_CHECKING:
    import torch


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; give the result the usual umask-based mode instead.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays, paths and dataclasses to plain JSON types.

    Non-finite floats (NaN, +-inf) become ``None``: strict JSON has no such numbers, and
    ``JSON.parse`` in a browser (or any strict reader) refuses a file that holds them.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    # arrays and scalars of libraries already loaded (an object of one cannot exist otherwise)
    torch_, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch_ is not None and isinstance(obj, torch_.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if np is not None:
        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return to_jsonable(float(obj))
    return obj


def safe_name(name: str, fallback: str) -> str:
    """``name`` as a file name: letters, digits, ``_.-`` kept, every other run of characters one ``-``
    (``fallback`` when nothing is left)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or fallback


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`); never NaN or Infinity."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps(obj) + "\n")


def fingerprint(*tensors: torch.Tensor | None, extra: object = None) -> str:
    """A short hash of tensors' contents (and ``extra``'s text): what a cached result was made from."""
    import hashlib

    import torch

    h = hashlib.blake2b(digest_size=12)
    for t in tensors:
        if t is not None:
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if extra is not None:
        h.update(repr(extra).encode())
    return h.hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ObfauditError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ObfauditError(f"{path}: not valid JSON ({e})") from None


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | None) -> torch.device:
    """Turn 'auto', 'cpu', 'cuda' or 'cuda:N' into a device, refusing cuda when absent.

    On a GPU, cuDNN may time its convolution algorithms once per shape and keep the fastest
    (every batch of a run has one of two or three shapes).
    """
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ObfauditError(f"unknown device {device!r}: use cpu, cuda or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ObfauditError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ObfauditError(f"unsupported device {device!r}: use cpu, cuda or auto")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return dev


@functools.cache
def _glibc():
    """The C library when it is glibc (whose allocator the two functions below tune), else None."""
    import ctypes
    import platform

    if not (os.name == "posix" and platform.libc_ver()[0] == "glibc"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to reuse freed blocks instead of returning them to the kernel.

    By default glibc serves blocks above a few MB with fresh ``mmap`` pages and unmaps them
    on free, so every training step re-faults (and the kernel re-zeroes) its activations and
    gradients: ~800,000 page faults and a quarter of the CPU time in the kernel for two
    epochs of InfNet-CNN on this machine. Raising the mmap threshold to its maximum (32 MiB)
    and the trim threshold to 1 GiB removes ~95% of those faults. Call it once, from an
    entry point that owns the process (the CLI, the benchmarks); elsewhere it does nothing.
    Returns whether the setting was applied.
    """
    libc = _glibc()
    if libc is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def release_freed_memory() -> bool:
    """Hand the blocks freed so far back to the kernel (glibc's ``malloc_trim``), between stages.

    What :func:`keep_freed_memory` keeps for the next training step is kept after a stage
    too, scattered through the heap: 0.6-1.1 GB after each audit of the default preset, so
    the run's peak grew stage by stage (one audit alone peaked at 2.3-2.4 GiB, three in a row
    at 2.9 GiB). Trimming after a stage takes milliseconds and costs the next stage only its first
    page faults. Returns whether it ran (glibc only).
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@dataclass(frozen=True)
class OutputPath:
    """A place a command will write: a directory it fills, or one file."""

    path: Path
    what: str
    """How the user gave it, e.g. ``--out``."""
    is_dir: bool = True


def _writable_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".obfaudit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ObfauditError(f"{what} {path} cannot be written ({e.strerror or e})") from None


def check_outputs(outputs: list[OutputPath]) -> None:
    """Every place a command writes is (or can become) writable, checked before any work: a file
    where a directory is expected, an unwritable folder or a file that cannot be replaced is one
    line now, not an error after training."""
    for out in outputs:
        path = Path(out.path)
        try:
            exists = path.exists()
            is_dir = path.is_dir()
        except OSError as e:  # e.g. a parent that cannot be searched
            raise ObfauditError(f"{out.what} {path} cannot be reached ({e.strerror or e})") from None
        if out.is_dir:
            if exists and not is_dir:
                raise ObfauditError(f"{out.what} {path} is a file, not a directory")
            _writable_dir(path, out.what)
        else:
            if is_dir:
                raise ObfauditError(f"{out.what} {path} is a directory, not a file")
            if path.parent.exists() and not path.parent.is_dir():
                raise ObfauditError(f"{out.what} {path}: {path.parent} is a file, not a directory")
            _writable_dir(path.parent, out.what)  # files are written to a temporary name, then renamed
            if exists and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
                raise ObfauditError(f"{out.what} {path} cannot be replaced")


def check_output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Make sure ``path`` is (or can become) a writable directory, before any work (see
    :func:`check_outputs`)."""
    check_outputs([OutputPath(Path(path), what)])
    return Path(path)


class RunLock:
    """An exclusive lock on a run directory, held for the life of a run.

    A second run into the same directory is refused with one line instead of mixing its
    stages with the first's. The lock is an ``flock`` on ``.lock``: the kernel releases it
    when the process ends, however it ends, so a killed run never leaves a stale lock.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ObfauditError(
                f"{self.path.parent} is in use by another obfaudit run (pid {holder}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits_in_memory(nbytes: float, what: str) -> None:
    """Refuse work whose arrays alone would not fit in the memory available now."""
    free = available_memory()
    if free is not None and nbytes > 0.8 * free:
        raise ObfauditError(
            f"{what} needs about {nbytes / 2**30:.1f} GiB of memory, but only {free / 2**30:.1f} GiB "
            "is available; ask for fewer images"
        )
