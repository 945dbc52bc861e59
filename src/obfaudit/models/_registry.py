"""A registry of model builders and the one factory that creates models by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder`` under ``name``; a second builder with the same name is an error."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    return sorted(_BUILDERS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; its arguments are kept on ``model.spec`` for saving."""
    try:
        builder = _BUILDERS[name]
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
