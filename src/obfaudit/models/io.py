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
from obfaudit.errors import ModelFileError
from obfaudit.models._registry import create_model

FORMAT = "obfaudit-model"
FORMAT_VERSION = 1


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
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save_safetensors(state, metadata={"format": FORMAT, "arch": spec["arch"]})
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


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of a saved model, checked to be one of ours."""
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
    return info


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a saved model from its sidecar and load its weights, checking every shape.

    Returns the model in eval mode and the sidecar. Any problem with the files raises
    :class:`ModelFileError` with one line saying what is wrong.
    """
    weights, _ = model_paths(path)
    info = read_sidecar(path)
    if not weights.exists():
        raise ModelFileError(f"{weights}: weights file not found")
    blob = weights.read_bytes()
    if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
        raise ModelFileError(f"{weights}: weights do not match the sidecar's SHA-256 (corrupt or replaced)")
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
