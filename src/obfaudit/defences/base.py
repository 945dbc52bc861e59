"""The defence contract: how an obfuscator is trained, and what it sends.

A defence has a name, a strength (its weight lambda, or the noise scale sigma) and up to
three hooks, all optional:

- ``model_kwargs()``: extra arguments of the obfuscator's architecture (the noise defence
  adds Gaussian noise inside the model, so the saved model sends noisy tensors too);
- ``penalty(x, z, attribute)``: a term added to the obfuscator's training loss (InfNet's
  cross-entropy on z = T(x)), already weighted by the strength;
- ``setup(z_shape, classes, device)``: builds what the defence trains beside the obfuscator
  (the adversarial defence's attribute classifier and its optimiser).

``none`` is today's ObfNet. Strength 0 of any defence is the undefended objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch

from obfaudit.errors import ObfauditError

DEFENCES: dict[str, type[Defence]] = {}


class Defence:
    """A defence at one strength. Subclass, set the class attributes, register."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    strength_name: ClassVar[str] = "lambda"
    needs_attribute: ClassVar[bool] = False
    """Whether training needs the server's labels of the sensitive attribute."""
    has_penalty: ClassVar[bool] = False
    """Whether :meth:`penalty` adds a term (else the obfuscator trains on InfNet's loss alone)."""

    def __init__(self, strength: float = 0.0) -> None:
        if not (isinstance(strength, int | float) and math.isfinite(strength) and strength >= 0):
            raise ObfauditError(f"--strength of {self.name} must be a finite number >= 0, got {strength!r}")
        self.strength = float(strength)

    def model_kwargs(self) -> dict:
        return {}

    def setup(self, z_shape: tuple[int, ...], classes: int, device: torch.device, seed: int) -> None:
        """Build what trains beside the obfuscator (called once, before training)."""

    def penalty(self, x: torch.Tensor, z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor | None:
        """The weighted extra loss of a batch, or None."""
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "strength": self.strength, "strength_name": self.strength_name}

    @property
    def label(self) -> str:
        return "none" if self.name == "none" else f"{self.name}-{self.strength:g}"


def register_defence(name: str) -> Callable[[type[Defence]], type[Defence]]:
    def decorator(cls: type[Defence]) -> type[Defence]:
        if name in DEFENCES:
            raise ValueError(f"defence {name!r} is already registered")
        cls.name = name
        DEFENCES[name] = cls
        return cls

    return decorator


def defence_names() -> tuple[str, ...]:
    return tuple(DEFENCES)


def get_defence(name: str, strength: float = 0.0) -> Defence:
    """The defence ``name`` at ``strength``; one clear error for an unknown name."""
    try:
        cls = DEFENCES[name]
    except KeyError:
        raise ObfauditError(f"unknown defence {name!r}; choose from {', '.join(DEFENCES)}") from None
    return cls(strength)


@register_defence("none")
class NoDefence(Defence):
    description = "today's ObfNet: the InfNet's cross-entropy alone"
