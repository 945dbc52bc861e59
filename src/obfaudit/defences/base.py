"""The defence contract: how an obfuscator is trained, and what it sends.

A defence has a name, a strength (its weight lambda, or the noise scale sigma), options of
its own (``options``: the invariance defence's attribute and counterfactual) and up to four
hooks, all optional:

- ``model_kwargs()``: extra arguments of the obfuscator's architecture (the noise defence
  adds Gaussian noise inside the model, so the saved model sends noisy tensors too);
- ``setup(ctx)``: builds what the defence trains beside the obfuscator from a
  :class:`TrainingContext` (the obfuscator itself, the shape it sends, the attribute's classes,
  the device, the seed, the steps per epoch): the adversarial defences' classifiers;
- ``penalty(x, z, attribute)``: a term added to the obfuscator's training loss (InfNet's
  cross-entropy on z = T(x)), already weighted by the strength;
- ``summary()``: what the defence saw while training (its adversaries' accuracy), kept in the
  model's sidecar beside the defence's name and strength.

``none`` is today's ObfNet. Strength 0 of any defence is the undefended objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch

from obfaudit.errors import ObfauditError
from obfaudit.train import TrainingContext  # noqa: F401 - the context setup() receives, defined where it is made

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
    options: ClassVar[tuple[str, ...]] = ()
    """Keyword options :func:`get_defence` passes on (others are refused when given)."""

    def __init__(self, strength: float = 0.0) -> None:
        if not (isinstance(strength, int | float) and math.isfinite(strength) and strength >= 0):
            raise ObfauditError(f"--strength of {self.name} must be a finite number >= 0, got {strength!r}")
        self.strength = float(strength)

    def model_kwargs(self) -> dict:
        return {}

    def setup(self, ctx: TrainingContext) -> None:
        """Build what trains beside the obfuscator (called once, before training)."""

    def penalty(self, x: torch.Tensor, z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor | None:
        """The weighted extra loss of a batch, or None."""
        return None

    def summary(self) -> dict:
        """What the defence measured while training (kept in the sidecar under ``defence``)."""
        return {}

    def settings(self) -> dict:
        """The options that decide what it trains (beyond name and strength), JSON-ready."""
        return {}

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "strength": self.strength,
            "strength_name": self.strength_name,
            **self.settings(),
        }

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


def get_defence(name: str, strength: float = 0.0, **options) -> Defence:
    """The defence ``name`` at ``strength`` with its ``options`` (None values are left out); one
    clear error for an unknown name or an option the defence does not take."""
    try:
        cls = DEFENCES[name]
    except KeyError:
        raise ObfauditError(f"unknown defence {name!r}; choose from {', '.join(DEFENCES)}") from None
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - set(cls.options))
    if extra:
        takers = [n for n, c in DEFENCES.items() if extra[0] in c.options]
        flag = "--" + extra[0].replace("_", "-")
        raise ObfauditError(f"{flag} is for the {' or '.join(takers) or 'no'} defence, not {name}")
    return cls(strength, **{k: v for k, v in given.items()})


def defence_from_dict(d: dict | None) -> Defence | None:
    """The defence a sidecar or stage settings describe (:meth:`Defence.to_dict`), or None."""
    if not d:
        return None
    options = {k: d[k] for k in DEFENCES.get(d["name"], Defence).options if k in d}
    return get_defence(d["name"], d.get("strength", 0.0), **options)


@register_defence("none")
class NoDefence(Defence):
    description = "today's ObfNet: the InfNet's cross-entropy alone"
