"""What every command shares: its registration, its result type, progress, and the checks of
what it will write, made before any work.

A command is one module of this package: a settings dataclass (the job, whose field
docstrings are the ``--help`` texts), a function from the job to a typed result (the
library call, which never prints or exits), and a :class:`Command` entry that adds its
options and builds its job from parsed arguments. Modules here import no torch at the top:
the CLI builds every parser, and answers ``--help`` and bad arguments, without it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from obfaudit._io import OutputPath, check_outputs  # noqa: F401  (every command's one output check)
from obfaudit.results import OnProgress, Progress, Result, quiet  # noqa: F401  (what every command returns)


@dataclass
class Interface:
    """What the CLI hands a command besides its job: how to show progress, and to announce a
    server's address."""

    progress_bars: bool = False
    on_progress: OnProgress = quiet
    announce: Callable[[str], None] = print


@dataclass(frozen=True)
class Command:
    """A command of the CLI: its name and help, how it adds its options, and how it runs."""

    name: str
    help: str
    description: str | Callable[[], str]
    """Shown by ``obfaudit NAME --help``; a callable is called only then (it may load registries)."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Interface], Result | None]


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def pick(args: argparse.Namespace, cls: type, **fixed: Any) -> Any:
    """An instance of dataclass ``cls`` from the parsed options that name its fields."""
    from obfaudit._settings import pick as _pick

    return _pick(args, cls, **fixed)
