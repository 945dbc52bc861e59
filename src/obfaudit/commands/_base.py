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
import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obfaudit.errors import ObfauditError


class Result:
    """A command's typed result: ``to_dict()`` is what ``--json`` prints, ``summary()`` the text."""

    def to_dict(self) -> dict:
        from obfaudit._io import to_jsonable

        return to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})  # type: ignore[arg-type]

    def summary(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Progress:
    """One step of a long command: a stage started, finished or was found done."""

    message: str
    done: int | None = None
    total: int | None = None


#: Receives each :class:`Progress` of a long command (the CLI prints them on stderr).
OnProgress = Callable[[Progress], None]


def quiet(progress: Progress) -> None:
    """The default progress callback: nothing."""


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
    json: bool = True
    """It has ``--json`` (commands that serve until stopped do not)."""


# ----------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class OutputPath:
    """A place a command will write: a directory it fills, or one file."""

    path: Path
    what: str
    """How the user gave it, e.g. ``--out``."""
    is_dir: bool = True


def _writable_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".obfaudit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ObfauditError(f"{what} {path} cannot be written ({e.strerror or e})") from None


def check_outputs(outputs: list[OutputPath]) -> None:
    """Every place a command writes is (or can become) writable, checked before any work: a file
    where a directory is expected, an unwritable folder or a file that cannot be replaced is one
    line now, not an error after training."""
    for out in outputs:
        path = Path(out.path)
        try:
            exists = path.exists()
            is_dir = path.is_dir()
        except OSError as e:  # e.g. a parent that cannot be searched
            raise ObfauditError(f"{out.what} {path} cannot be reached ({e.strerror or e})") from None
        if out.is_dir:
            if exists and not is_dir:
                raise ObfauditError(f"{out.what} {path} is a file, not a directory")
            _writable_dir(path, out.what)
        else:
            if is_dir:
                raise ObfauditError(f"{out.what} {path} is a directory, not a file")
            if path.parent.exists() and not path.parent.is_dir():
                raise ObfauditError(f"{out.what} {path}: {path.parent} is a file, not a directory")
            _writable_dir(path.parent, out.what)  # files are written to a temporary name, then renamed
            if exists and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
                raise ObfauditError(f"{out.what} {path} cannot be replaced")


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def pick(args: argparse.Namespace, cls: type, **fixed: Any) -> Any:
    """An instance of dataclass ``cls`` from the parsed options that name its fields."""
    from obfaudit._settings import pick as _pick

    return _pick(args, cls, **fixed)
