"""Saved models: safetensors weights plus a JSON sidecar; nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from obfaudit._io import atomic_write_bytes, to_jsonable, write_json
from obfaudit._version import __version__
from obfaudit.data.registry import dataset_names
from obfaudit.errors import ModelFileError
from obfaudit.models._registry import ROLE_WORDS, Role, create_model, role_of

FORMAT = "obfaudit-model"
FORMAT_VERSION = 1
#: Sanity bounds on what a sidecar may ask to build (a 10^12 bottleneck would take the machine).
MAX_WIDTH = 1 << 16
MAX_SIDE = 4096


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for a path given as ``X``, ``X.safetensors`` or ``X.json``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_model(model: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Save ``model`` (built by :func:`create_model`) as ``path.safetensors`` + ``path.json``.

    ``meta`` goes into the sidecar: dataset, seed, epochs, metrics and so on. The weights
    are written first and the sidecar last, each atomically, so a sidecar means a whole model.
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("only models built with obfaudit.models.create_model can be saved")
    weights, sidecar = model_paths(path)
    # One metadata entry: safetensors writes its metadata map in a random order (a Rust
    # HashMap; 6 different files in 50 saves of two entries), so with one key one model
    # always gives the same bytes, and one SHA-256.
    state = {k: v.detach().cpu().contiguous() for k, v in sorted(model.state_dict().items())}
    marker = json.dumps({"arch": spec["arch"], "format": FORMAT}, sort_keys=True)
    blob = save_safetensors(state, metadata={"obfaudit": marker})
    atomic_write_bytes(weights, blob)
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": spec["arch"],
        "kwargs": spec["kwargs"],
        "input_shape": list(getattr(model, "input_shape", []) or []),
        "output_shape": list(getattr(model, "output_shape", []) or []),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "obfaudit_version": __version__,
        **to_jsonable(meta),
    }
    write_json(sidecar, info)
    return weights


def _check_sidecar(info: dict, sidecar: Path) -> None:
    """Refuse sidecars whose values cannot describe a model obfaudit would build."""

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{sidecar}: {what}")

    if not isinstance(info.get("arch"), str):
        raise bad("no architecture name ('arch')")
    kwargs = info.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise bad("'kwargs' is not an object")
    for key in ("bottleneck", "classes"):
        v = kwargs.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= MAX_WIDTH):
            raise bad(f"{key} {v!r} is not a whole number between 1 and {MAX_WIDTH}")
    for key in ("input_shape", "output_shape"):
        v = kwargs.get(key)
        if v is not None and not (
            isinstance(v, list) and len(v) == 3 and all(isinstance(d, int) and 0 < d <= MAX_SIDE for d in v)
        ):
            raise bad(f"{key} {v!r} is not a (C, H, W) shape with sides between 1 and {MAX_SIDE}")
    ds = info.get("dataset")
    known = dataset_names()
    if ds is not None and ds not in known:
        raise bad(f"unknown dataset {ds!r}; obfaudit models are trained on {', '.join(known)}")
    seed = info.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise bad(f"seed {seed!r} is not a whole number of 0 or more")
    if not isinstance(info.get("sha256"), str) or len(info["sha256"]) != 64:
        raise bad("no SHA-256 of the weights ('sha256'): the weights cannot be checked")


def read_sidecar(path: str | Path, *, role: Role | str | None = None) -> dict[str, Any]:
    """The sidecar of a saved model, checked to be one of ours (and of ``role``, if given).

    Args:
        path: the model as ``X``, ``X.safetensors`` or ``X.json``.
        role: ``obfuscator`` or ``infnet``: refuse a model of the other kind in one line.
    """
    _, sidecar = model_paths(path)
    if not sidecar.exists():
        raise ModelFileError(f"{sidecar}: model sidecar not found (expected beside the .safetensors)")
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{sidecar}: corrupt sidecar ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelFileError(f"{sidecar}: not an obfaudit model sidecar")
    if info.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{sidecar}: unsupported format version {info.get('format_version')}")
    _check_sidecar(info, sidecar)
    if role is not None and role_of(info["arch"]) != role:
        other = role_of(info["arch"])
        kind = ROLE_WORDS[other] if other else f"a {info['arch']}"
        raise ModelFileError(f"{sidecar.with_suffix('')} is {kind}, not {ROLE_WORDS[Role(role)]}")
    return info


def load_model(
    path: str | Path, *, device: str | torch.device = "cpu", role: Role | str | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild a saved model from its sidecar and load its weights, checking every shape.

    Returns the model in eval mode and the sidecar. Any problem with the files raises
    :class:`ModelFileError` with one line saying what is wrong.
    """
    weights, _ = model_paths(path)
    info = read_sidecar(path, role=role)
    if not weights.exists():
        raise ModelFileError(f"{weights}: weights file not found")
    blob = weights.read_bytes()
    if hashlib.sha256(blob).hexdigest() != info["sha256"]:
        raise ModelFileError(
            f"{weights}: the weights' SHA-256 differs from the sidecar's (corrupt or replaced)"
        )
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError) as e:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({e})") from None
    try:
        model = create_model(info["arch"], **info.get("kwargs", {}))
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{weights}: cannot rebuild architecture {info.get('arch')!r} ({e})") from None
    expected = model.state_dict()
    if set(expected) != set(state):
        missing = sorted(set(expected) - set(state))[:3]
        extra = sorted(set(state) - set(expected))[:3]
        raise ModelFileError(
            f"{weights}: tensors do not fit {info['arch']} (missing {missing}, extra {extra})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ModelFileError(
                f"{weights}: tensor {name} has shape {tuple(tensor.shape)}, "
                f"{info['arch']} needs {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state)
    return model.to(device).eval(), info
