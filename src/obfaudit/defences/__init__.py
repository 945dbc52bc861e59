"""Defences: ways to train an obfuscator (or change what it sends) so that it leaks less.

Each defence is one module with a :class:`Defence` subclass registered under its name;
``obfaudit train obfnet --defence NAME --strength X`` trains one, and the ``defences``
preset sweeps them. See :mod:`.base` for the contract.
"""

from obfaudit.defences import adversarial, dcor, invariance, noise  # noqa: F401 - registers the built-ins
from obfaudit.defences.base import (
    DEFENCES,
    Defence,
    TrainingContext,
    defence_from_dict,
    defence_names,
    get_defence,
    register_defence,
)

__all__ = [
    "DEFENCES",
    "Defence",
    "TrainingContext",
    "defence_from_dict",
    "defence_names",
    "get_defence",
    "register_defence",
]
