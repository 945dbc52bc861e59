"""A registry of model builders and the one factory that creates models by name.

Each builder is registered with its role (what it is for: an obfuscator, an InfNet, an
attack network) and, for the networks the commands train, its short architecture name,
so ``model_for(Role.OBFUSCATOR, "mlp")`` finds ``obfnet_mlp`` without building names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from torch import nn


class Role(StrEnum):
    """What a model is for; a saved model given for one role is refused for another."""

    OBFUSCATOR = "obfuscator"
    INFNET = "infnet"
    ATTACK = "attack"


#: The words an error uses for a model of each role.
ROLE_WORDS = {
    Role.OBFUSCATOR: "an obfuscator (ObfNet)",
    Role.INFNET: "an InfNet (classifier)",
    Role.ATTACK: "an attack network",
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    role: Role | None
    arch: str | None = None
    """The short name commands take (``--arch mlp``), for the models they train."""


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, role: Role | str | None = None, arch: str | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder`` under ``name`` with its role (None: a model no command loads by role);
    a second builder with the same name is an error."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, Role(role) if role else None, arch)
        return builder

    return decorator


def list_models(role: Role | str | None = None) -> list[str]:
    return sorted(n for n, e in _MODELS.items() if role is None or e.role == role)


def role_of(name: str) -> Role | None:
    entry = _MODELS.get(name)
    return entry.role if entry else None


def model_for(role: Role | str, arch: str) -> str:
    """The registered model of ``role`` whose short architecture name is ``arch``."""
    for entry in _MODELS.values():
        if entry.role == role and entry.arch == arch:
            return entry.name
    raise ValueError(f"no {role} model with architecture {arch!r}; choose from {', '.join(archs(role))}")


def archs(role: Role | str) -> tuple[str, ...]:
    """The short architecture names of ``role``'s models (what ``--arch`` takes)."""
    return tuple(e.arch for e in _MODELS.values() if e.role == role and e.arch)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; its arguments are kept on ``model.spec`` for saving."""
    try:
        builder = _MODELS[name].builder
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(list_models())}") from None
    model = builder(**kwargs)
    model.spec = {"arch": name, "kwargs": _plain(kwargs)}  # type: ignore[assignment]
    return model


def model_id(name: str, **kwargs: Any) -> str:
    """A readable name that encodes the settings: ``obfnet_mlp`` + bottleneck 512 -> obfnet-mlp-b512."""
    base = name.replace("_", "-")
    if "bottleneck" in kwargs:
        base += f"-b{kwargs['bottleneck']}"
    return base


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
