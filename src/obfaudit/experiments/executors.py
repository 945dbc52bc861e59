"""Executors by name: how the stages of a plan run (here one after another, or as Ray tasks).

An executor is a class with ``run(plan, ctx, *, on_event) -> records`` (see
:class:`~obfaudit.experiments.stages.Executor`), made with ``address=`` (the cluster to join,
for executors that have one). It is registered here by its import path, so naming it in
``--executor`` imports it and nothing else: a new executor is one module, one line below
and a test.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from obfaudit.errors import ObfauditError

if TYPE_CHECKING:
    from obfaudit.experiments.stages import Executor


@dataclass(frozen=True)
class ExecutorEntry:
    name: str
    target: str
    """``module:Class`` of the executor."""
    description: str
    takes_address: bool = False
    """It joins a cluster given as --address."""


_EXECUTORS: dict[str, ExecutorEntry] = {}


def register_executor(
    name: str, target: str, *, description: str, takes_address: bool = False
) -> ExecutorEntry:
    if name in _EXECUTORS:
        raise ValueError(f"executor {name!r} is registered twice")
    _EXECUTORS[name] = entry = ExecutorEntry(name, target, description, takes_address)
    return entry


def unregister_executor(name: str) -> None:
    """Remove an executor (for tests that register a temporary one)."""
    _EXECUTORS.pop(name, None)


def executor_names() -> tuple[str, ...]:
    return tuple(_EXECUTORS)


def executor_entry(name: str) -> ExecutorEntry:
    try:
        return _EXECUTORS[name]
    except KeyError:
        raise ObfauditError(f"unknown executor {name!r}; choose from {', '.join(_EXECUTORS)}") from None


@contextlib.contextmanager
def closing_executor(executor: Executor):
    """``executor`` for the block, its ``close()`` (stopping what it started, e.g. worker processes) called
    after, whatever happens; executors without one need none."""
    try:
        yield executor
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()


def make_executor(name: str, *, address: str | None = None) -> Executor:
    """The executor ``name``, ready to run; a missing dependency or a misplaced --address is one
    line now, before any work."""
    entry = executor_entry(name)
    if address and not entry.takes_address:
        raise ObfauditError(f"--address names a cluster to join: use it with --executor ray, not {name}")
    module, _, cls = entry.target.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    return factory(address=address) if entry.takes_address else factory()


register_executor(
    "processes",
    "obfaudit.experiments.pool:PoolExecutor",
    description="stages side by side in worker processes on this machine, one per CPU (at most 4; "
    "$OBFAUDIT_WORKERS), each with its share of the cores: the default",
)
register_executor(
    "serial",
    "obfaudit.experiments.stages:SerialExecutor",
    description="one stage after another, in this process",
)
register_executor(
    "ray",
    "obfaudit.experiments.ray_executor:RayExecutor",
    description="stages as Ray tasks, several at once, here or on a cluster (pip install 'obfaudit[ray]')",
    takes_address=True,
)
