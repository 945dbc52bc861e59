"""Validating option types shared by the commands, and options made from settings dataclasses.

Names that live in registries (attacks, datasets) are checked when given, by a type that
loads the registry then: building a parser loads nothing heavy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from obfaudit._settings import add_options


class Parser(argparse.ArgumentParser):
    """An argument parser whose description may be a callable, called only to show the help."""

    def __init__(self, *args, description: str | Callable[[], str] | None = None, **kwargs) -> None:
        self._describe = description if callable(description) else None
        super().__init__(*args, description=None if callable(description) else description, **kwargs)

    def format_help(self) -> str:
        if self._describe is not None:
            self.description = self._describe()
        return super().format_help()


def _number_arg(kind: Callable[[str], float], accept: Callable[[float], bool], expected: str):
    """An argparse type: ``kind(text)`` if ``accept`` holds, else one line saying what was expected."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


positive_int = _number_arg(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number_arg(int, lambda v: v >= 0, "an integer of 0 or more")
positive_float = _number_arg(float, lambda v: 0 < v < float("inf"), "a positive finite number")
non_negative_float = _number_arg(float, lambda v: 0 <= v < float("inf"), "a finite number >= 0")
n_tsne = _number_arg(int, lambda v: v >= 50, "at least 50 points (t-SNE and its k-NN scores need them)")


def device_arg(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or text.startswith("cuda:"):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}: use cpu, cuda, cuda:N or auto")


def parse_shape(text: str) -> tuple[int, int, int]:
    """'224x224x3' (H x W x C, as the study writes it) -> (C, H, W)."""
    try:
        h, w, c = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(
            f"input shape must look like 224x224x3 (height x width x channels), got {text!r}"
        ) from None
    if min(h, w, c) <= 0:
        raise ValueError(f"input shape must be positive, got {text!r}")
    return c, h, w


def shape_arg(text: str) -> tuple[int, int, int]:
    try:
        return parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def registered(names: Callable[[], tuple[str, ...]], what: str):
    """An argparse type accepting one of ``names()`` (a registry, loaded only when the option is given)."""

    def parse(text: str) -> str:
        choices = names()
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return text

    parse.__name__ = what
    return parse


def trainable_datasets() -> tuple[str, ...]:
    """The datasets obfaudit trains InfNets and ObfNets on (the digit datasets)."""
    from obfaudit.data import dataset_names

    return dataset_names(trainable=True)


def attack_names() -> tuple[str, ...]:
    from obfaudit.attacks import attack_names as names

    return names()


def attacks_listing() -> str:
    """Each registered attack with its party and what it does (for help texts)."""
    from obfaudit.attacks import attacks_table

    return "; ".join(f"{a['attack']} ({a['description']})" for a in attacks_table())


#: Validating types and choices shared by every command that has the option.
CHECKS: dict[str, dict] = {
    "seed": {"type": non_negative_int},
    "device": {"type": device_arg},
    "epochs": {"type": positive_int},
    "min_steps": {"type": non_negative_int, "metavar": "STEPS"},
    "batch_size": {"type": positive_int},
    "lr": {"type": positive_float},
    "precision": {"choices": ("bf16", "fp32")},
    "patience": {"type": non_negative_int, "default": 0},
    "shift": {"type": non_negative_int, "metavar": "PX"},
    "n": {"type": positive_int},
    "n_train": {"type": positive_int},
    "n_test": {"type": positive_int},
    "n_proxy": {"type": positive_int},
    "n_tsne": {"type": n_tsne},
    "tsne_backend": {"choices": ("opentsne", "sklearn")},
    "bottleneck": {"type": positive_int},
    "classes": {"type": positive_int},
    "input": {"type": shape_arg},
    "repeats": {"type": positive_int, "metavar": "K"},
    "size": {"type": positive_int},
    "attacks": {"flag": "--attack", "type": registered(attack_names, "attack"), "metavar": "NAME"},
}


def add(parser, cls: type, names: list[str], **overrides: dict) -> None:
    """Options for fields ``names`` of ``cls``, with the shared checks and any overrides."""
    add_options(parser, cls, names, **{n: {**CHECKS.get(n, {}), **overrides.get(n, {})} for n in names})
