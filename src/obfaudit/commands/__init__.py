"""The commands: one module each, a typed job in and a typed result (with its summary) out.

The CLI (:mod:`obfaudit.cli`) loops over :data:`COMMANDS`: each module's ``COMMAND`` adds its
options and runs its job. From Python, call a command's own function with its job, e.g.
:func:`obfaudit.audit.audit`. Importing this package loads no torch.
"""

from __future__ import annotations

import importlib

from obfaudit.commands._base import Command, Interface, OutputPath, Progress, Result, check_outputs

#: The commands in the order ``obfaudit --help`` lists them (each the module of that name).
COMMANDS = (
    "data",
    "train",
    "obfuscate",
    "audit",
    "compare",
    "reproduce",
    "cost",
    "report",
    "serve",
    "tap",
    "edge",
    "export",
)


def command(name: str) -> Command:
    """The command ``name`` (its module's ``COMMAND``)."""
    return importlib.import_module(f"obfaudit.commands.{name}").COMMAND


__all__ = ["COMMANDS", "Command", "Interface", "OutputPath", "Progress", "Result", "check_outputs", "command"]
