"""Where a transform under audit comes from: a saved obfaudit model, MODULE:CALLABLE, a control."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path

from obfaudit.errors import ObfauditError
from obfaudit.transforms.base import CONTROLS, Transform


@dataclass
class LoadedTransform:
    """A transform ready to audit, with its name and what is known about it."""

    name: str
    transform: Transform
    source: str
    """How it was given: the model path, MODULE:CALLABLE or the control's name."""
    dataset: str | None = None
    """The dataset a saved model was trained on, if it says."""
    info: dict = field(default_factory=dict)
    """A saved model's sidecar."""

    def fingerprint(self, probe, *, seed: int = 0, device: str = "cpu") -> str:
        """What this transform is, for the keys of cached results: a control's name, a saved model's
        SHA-256, an ONNX file's, or else its source and its outputs on the ``probe`` images (drawn
        after seeding with ``seed``: a random transform's noise is part of it)."""
        import hashlib

        import torch

        from obfaudit._io import fingerprint
        from obfaudit.transforms.base import CheckedTransform, to_device
        from obfaudit.transforms.onnx import OnnxTransform

        if self.source in CONTROLS and self.name == self.source:
            return f"control:{self.source}"
        if self.info.get("sha256"):
            return f"model:{self.info['sha256']}"
        if isinstance(self.transform, OnnxTransform):
            return f"onnx:{hashlib.sha256(self.transform.path.read_bytes()).hexdigest()}"
        torch.manual_seed(seed)
        with torch.no_grad():
            z = torch.as_tensor(
                CheckedTransform(to_device(self.transform, device), self.name)(probe.to(device))
            )
        return f"callable:{self.source}:{fingerprint(z)}"


def _takes_no_arguments(fn) -> bool:
    try:
        return not inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def seeded(seed: int):
    """PyTorch's, NumPy's and Python's random generators seeded with ``seed`` inside the block, and each
    restored after: a factory's random weights are the same wherever and whenever it is called."""
    import random

    import numpy as np
    import torch

    state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)
            np.random.set_state(np_state)


def load_callable(spec: str, *, option: str = "--transform", seed: int = 0) -> tuple[str, Transform]:
    """``MODULE:CALLABLE`` -> (name, transform); a class or argument-less function is a factory.

    The working directory is searched first, as ``python -m`` would: a user running
    obfaudit next to their package expects it to be found. ``option`` names the flag in errors.
    A factory is called with the random generators seeded with ``seed`` (:func:`seeded`): a model it
    builds with random weights (``torchvision.models:resnet18``) is the same model in every process that
    loads it and in every rerun, so a rerun keeps its results. (A module that draws at import is not
    covered: the audit's worker processes compare each subject's fingerprint with the one planned.)
    """
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ObfauditError(f"{option} {spec!r}: expected MODULE:CALLABLE, e.g. mypkg.obf:make")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        obj = getattr(importlib.import_module(module), attr)
    except Exception as e:  # noqa: BLE001 - importing runs the user's module: anything can fail
        raise ObfauditError(f"{option} {spec}: cannot import ({type(e).__name__}: {e})") from e
    if isinstance(obj, type) or (callable(obj) and _takes_no_arguments(obj)):
        try:
            with seeded(seed):
                obj = obj()
        except Exception as e:  # noqa: BLE001
            raise ObfauditError(
                f"{option} {spec}: calling the factory failed ({type(e).__name__}: {e})"
            ) from e
    if not callable(obj):
        raise ObfauditError(f"{option} {spec}: {attr} is not callable")
    return attr, obj


def resolve_source(source: str, *, device: str = "cpu", seed: int = 0) -> LoadedTransform:
    """A transform from one ``--transform`` string: ``identity`` or ``null`` (a control), a
    ``.onnx`` file, a saved obfaudit model (``X``, ``X.safetensors`` or ``X.json``), or
    ``MODULE:CALLABLE`` (a factory called under ``seed``, see :func:`load_callable`)."""
    from obfaudit.models.io import model_paths

    if source in CONTROLS:
        return load_transform(control=source, device=device)
    path = Path(source)
    if path.suffix == ".onnx":
        from obfaudit.transforms.onnx import OnnxTransform

        return LoadedTransform(path.stem, OnnxTransform(path), source)
    if any(p.exists() for p in model_paths(path)):
        return load_transform(obfnet=path, device=device)
    if ":" in source:
        return load_transform(transform=source, device=device, seed=seed)
    raise ObfauditError(
        f"--transform {source!r}: not a control (identity, null), a .onnx file, a saved model "
        "or MODULE:CALLABLE"
    )


def load_transform(
    *,
    obfnet: str | Path | None = None,
    transform: str | None = None,
    control: str | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> LoadedTransform:
    """The transform named by exactly one of ``obfnet`` (a saved model), ``transform``
    (MODULE:CALLABLE, a factory called under ``seed``) or ``control`` (identity, null), on ``device``."""
    given = [v for v in (obfnet, transform, control) if v is not None]
    if len(given) != 1:
        raise ObfauditError("give exactly one transform: a saved ObfNet, MODULE:CALLABLE or a control")
    if obfnet is not None:
        from obfaudit.models import load_model

        model, info = load_model(obfnet, device=device, role="obfuscator")
        return LoadedTransform(
            Path(obfnet).with_suffix("").name, model, str(obfnet), info.get("dataset"), info
        )
    if transform is not None:
        name, fn = load_callable(transform, seed=seed)
        return LoadedTransform(name, fn, transform)
    if control not in CONTROLS:
        raise ObfauditError(f"unknown control {control!r}; choose from {', '.join(CONTROLS)}")
    return LoadedTransform(control, CONTROLS[control](), control)
