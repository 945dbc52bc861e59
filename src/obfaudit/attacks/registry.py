"""The attack registry: ``@register_attack("name")`` on an :class:`Attack` subclass.

The auditor, the results, the report and the CLI's ``--attack`` choices all read this
registry, so adding an attack is one new module. Attacks outside obfaudit join through
the ``obfaudit.plugins`` entry-point group of an installed package, or by naming their
modules in the ``OBFAUDIT_PLUGINS`` environment variable (comma-separated).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.errors import ObfauditError
from obfaudit.threat import Need

_ATTACKS: dict[str, type[Attack]] = {}
_plugins_loaded = False
#: The built-in attacks in the study's order; they lead every listing, plugins follow.
_BUILTIN_ORDER = (
    "recnet",
    "colornet",
    "noisynet",
    "pathnet",
    "proxynet",
    "tsne",
    "inversion",
    "decoder",
    "inversion-decoder",
    "inversion-recnet",
    "reference",
    "inversion-reference",
    "linprobe",
    "knnprobe",
    "linprobe-proxy",
    "knnprobe-proxy",
)


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Register an :class:`Attack` subclass under ``name``; names are unique."""

    def decorator(cls: type[Attack]) -> type[Attack]:
        if name in _ATTACKS and _ATTACKS[name] is not cls:
            raise ValueError(f"attack {name!r} is registered twice")
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise TypeError(f"{cls!r} is not an Attack subclass")
        if not isinstance(getattr(cls, "party", None), Party):
            raise TypeError(f"attack {name!r} must declare party = Party.<...>")
        if not isinstance(getattr(cls, "output", None), Output):
            raise TypeError(f"attack {name!r} must declare output = Output.<...>")
        try:
            needs = tuple(Need.parse(n) for n in cls.needs)
        except ValueError as e:
            raise ValueError(f"attack {name!r}: {e}") from None
        cls.needs = needs
        cls.name = name
        _ATTACKS[name] = cls
        return cls

    return decorator


def unregister_attack(name: str) -> None:
    """Remove an attack (for tests that register a temporary one)."""
    _ATTACKS.pop(name, None)


def load_plugins() -> None:
    """Import the plugin modules once (entry points, OBFAUDIT_PLUGINS); the built-in attacks are
    registered already: importing this module imports :mod:`obfaudit.attacks`, which imports them."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    modules = [m.strip() for m in os.environ.get("OBFAUDIT_PLUGINS", "").split(",") if m.strip()]
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any failure of a user's plugin is one line
            raise ObfauditError(
                f"OBFAUDIT_PLUGINS: cannot import {module!r} ({type(e).__name__}: {e})"
            ) from None
    from importlib.metadata import entry_points

    for ep in entry_points(group="obfaudit.plugins"):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001
            raise ObfauditError(f"plugin {ep.name!r} ({ep.value}) failed to load: {e}") from None


def attack_names() -> tuple[str, ...]:
    """Every registered attack: the built-in ones in the study's order, then the others as registered."""
    load_plugins()
    order = {n: i for i, n in enumerate(_BUILTIN_ORDER)}
    return tuple(sorted(_ATTACKS, key=lambda n: order.get(n, len(order))))


def attack_class(name: str) -> type[Attack]:
    load_plugins()
    try:
        return _ATTACKS[name]
    except KeyError:
        raise ObfauditError(f"unknown attack {name!r}; choose from {', '.join(_ATTACKS)}") from None


def attacks_table() -> list[dict]:
    """Name, party, output, needs and description of every attack (for help and the report)."""
    return [
        {
            "attack": n,
            "party": str(c.party),
            "output": str(c.output),
            "needs": [str(n) for n in c.needs],
            "description": c.description,
        }
        for n, c in ((n, attack_class(n)) for n in attack_names())
    ]
