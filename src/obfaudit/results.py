"""A long call's typed result and its progress: what the commands return and the CLI prints.

:class:`Result` is the base of every command's result (``to_dict()`` for ``--json``, ``summary()`` for
the text); :class:`Progress` is one step of a long call, handed to an ``on_progress`` callback.
Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass


class Result:
    """A command's typed result: ``to_dict()`` is what ``--json`` prints, ``summary()`` the text."""

    def to_dict(self) -> dict:
        from obfaudit._io import to_jsonable

        return to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})  # type: ignore[arg-type]

    def summary(self) -> str:
        raise NotImplementedError

    @property
    def exit_code(self) -> int:
        """The command's exit status when it ran to the end (the audit's gate sets 3)."""
        return 0


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


def duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


__all__ = ["OnProgress", "Progress", "Result", "duration", "quiet"]
