"""Stages, their keys, the stage cache and the executors that run a plan.

A :class:`Stage` is ``(name, settings, deps, fn)`` plus a code ``version``. Its key hashes
its settings, its version and its dependencies' keys, so a changed setting, an upgrade
that changes what a stage computes, or a changed input recomputes that stage and every
stage after it, and nothing else. A stage's record is written atomically after the
files it describes: a run killed at any moment leaves only whole, finished stages.

An :class:`Executor` runs a plan; :class:`SerialExecutor` (the default) runs it in order
in this process, :class:`~obfaudit.experiments.ray_executor.RayExecutor` as Ray tasks;
:mod:`.executors` names them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from obfaudit._io import release_freed_memory, to_jsonable, write_json
from obfaudit.records import read_records  # noqa: F401  (re-exported: stage records are records)

#: fn(ctx, stage, inputs) -> result; ``inputs`` maps each input's role to its stage record.
StageFn = Callable[[Any, "Stage", Mapping[str, dict]], dict]


@dataclass(frozen=True)
class Resources:
    """What one stage needs while it runs (for executors that place stages on workers)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Stage:
    """One resumable step of a plan."""

    name: str
    fn: StageFn
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Everything that decides the result, besides the dependencies' results."""
    inputs: Mapping[str, str] = field(default_factory=dict)
    """The stages it reads, by role (e.g. ``{"obfnet": "obfnet-mnist-mlp-b8"}``): ``fn`` gets their
    records under these roles."""
    deps: tuple[str, ...] = ()
    """The names of the stages it reads (filled from ``inputs``; given alone, each is its own role)."""
    about: Mapping[str, Any] = field(default_factory=dict)
    """Typed context of the result (kind, dataset, arch, bottleneck, attribute), copied into
    the record so results are built without parsing stage names."""
    version: int = 1
    """Raise when the code of ``fn`` changes what it computes: the key changes with it."""
    valid: Callable[[Any, dict], bool] | None = None
    """Checks that a stored record's files are still there, readable and unchanged."""
    outputs: tuple[str, ...] = ()
    """Keys its result must have; a stored record without them is recomputed."""
    resources: Resources = field(default_factory=Resources)
    cost: float = 1.0
    """A rough relative estimate of its run time: an executor running several stages at once
    starts the longest chains first. Not part of the key."""
    store: Path | None = None
    """Where its record lives when not in the run directory: a cache shared by runs (e.g. an
    audit's controls, which depend only on the data and settings). Not part of the key."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"bad stage name {self.name!r}")
        if self.inputs and self.deps and tuple(self.inputs.values()) != tuple(self.deps):
            raise ValueError(f"stage {self.name}: give its inputs by role or its deps, not both")
        if self.deps and not self.inputs:
            object.__setattr__(self, "inputs", {d: d for d in self.deps})
        object.__setattr__(self, "deps", tuple(self.inputs.values()))

    def by_role(self, records: Mapping[str, dict]) -> dict[str, dict]:
        """Its inputs' records (``records`` by stage name) under their roles."""
        return {role: records[name] for role, name in self.inputs.items()}


def settings_hash(obj: Any) -> str:
    blob = json.dumps(to_jsonable(obj), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_plan(plan: Sequence[Stage]) -> None:
    """Every stage once, after the stages it depends on."""
    seen: set[str] = set()
    for stage in plan:
        missing = [d for d in stage.deps if d not in seen]
        if missing:
            raise ValueError(f"stage {stage.name} depends on {missing}, which are not before it in the plan")
        if stage.name in seen:
            raise ValueError(f"stage {stage.name} is in the plan twice")
        seen.add(stage.name)


def chain_costs(plan: Sequence[Stage]) -> dict[str, float]:
    """Each stage's cost plus the costliest chain of stages that depend on it."""
    after: dict[str, float] = {}
    children: dict[str, list[str]] = {s.name: [] for s in plan}
    for s in plan:
        for d in s.deps:
            children[d].append(s.name)
    for s in reversed(plan):
        after[s.name] = s.cost + max((after[c] for c in children[s.name]), default=0.0)
    return after


def stage_key(stage: Stage, records: Mapping[str, dict]) -> str:
    """A hash of the stage's settings, its version, and each input's key and content hash
    (``records``: the finished stages' records by name).

    An input's content hash is the SHA-256 of the model file it made (``result.sha256``),
    so a dependency whose file changed (recomputed, or replaced by another run) always
    recomputes what reads it, even when its own settings did not change.
    """
    deps = {d: [records[d]["key"], records[d]["result"].get("sha256")] for d in stage.deps}
    return settings_hash({"settings": stage.settings, "version": stage.version, "deps": deps})


class StageCache:
    """Stage records under ``run_dir/stages/NAME.json``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir) / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"bad stage name {name!r}")
        return self.dir / f"{name}.json"

    def load(self, name: str, key: str, outputs: Sequence[str] = ()) -> dict | None:
        """The stored record of ``name`` if it was made with ``key`` and has ``outputs``, else None."""
        path = self.path(name)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # a damaged record is recomputed, never trusted
        if not isinstance(record, dict) or not isinstance(record.get("result"), dict):
            return None  # valid JSON of the wrong shape: recomputed too
        if any(k not in record["result"] for k in outputs):
            return None
        return record if record.get("key") == key else None

    def store(self, stage: Stage, key: str, result: dict, seconds: float) -> dict:
        record = {
            "stage": stage.name,
            "key": key,
            "version": stage.version,
            "about": to_jsonable(stage.about),
            "settings": to_jsonable(stage.settings),
            "deps": list(stage.deps),
            "seconds": round(seconds, 3),
            "result": to_jsonable(result),
        }
        write_json(self.path(stage.name), record)
        return record


def artifacts_ok(ctx: Any, record: dict) -> bool:
    """Whether the arrays a stage saved (``result.artifacts``, relative to ``ctx.out``) still load: a
    stage kept from an earlier run whose arrays are gone or torn is run again."""
    from safetensors.torch import load_file

    path = record["result"].get("artifacts")
    if not path:
        return True
    try:
        load_file(str(Path(ctx.out) / path))
        return True
    except Exception:  # noqa: BLE001 - unreadable arrays: recompute the stage
        return False


class StageState(StrEnum):
    """Where a stage is, as an executor reports it."""

    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    """Found done by an earlier run: its record is kept."""


@dataclass
class StageEvent:
    """What an executor reports as it goes: a stage started, finished or was found done."""

    stage: str
    state: StageState
    seconds: float = 0.0
    done: int = 0
    total: int = 0
    running: int = 0
    """Stages running now (executors that run several at once say; else 0)."""
    waiting: int = 0
    """Stages not started yet (executors that run several at once say; else 0)."""
    left: float | None = None
    """Seconds the stages still to run will take, estimated from those that ran (None before any)."""


def kept_records(plan: Sequence[Stage], ctx: Any) -> dict[str, dict]:
    """The records of the stages an earlier run finished: in plan order, a stage whose inputs are all
    kept and whose stored record has its key (and passes its ``valid`` check)."""
    records: dict[str, dict] = {}
    for stage in plan:
        if any(d not in records for d in stage.deps):
            continue
        record = StageCache(stage.store or ctx.out).load(stage.name, stage_key(stage, records), stage.outputs)
        if record is not None and (stage.valid is None or stage.valid(ctx, record)):
            records[stage.name] = record
    return records


class Estimate:
    """How long the stages still to run will take: their costs (:attr:`Stage.cost`) at the seconds per
    unit of cost of the stages that ran in this run, shared among ``parallel`` workers. Stages kept
    from an earlier run count for nothing."""

    def __init__(self, plan: Sequence[Stage], kept: Mapping[str, dict], *, parallel: int = 1) -> None:
        self.cost = {s.name: s.cost for s in plan}
        self.finished: set[str] = set()
        """Stages done or kept."""
        self.kept = set(kept)
        self.parallel = max(1, parallel)
        self._seconds, self._units = 0.0, 0.0

    def ran(self, name: str, seconds: float) -> None:
        self.finished.add(name)
        self._seconds += seconds
        self._units += self.cost[name]

    def left(self) -> float | None:
        if not self._units:
            return None
        remaining = [c for n, c in self.cost.items() if n not in self.finished and n not in self.kept]
        if not remaining:
            return 0.0
        return self._seconds / self._units * sum(remaining) / min(self.parallel, len(remaining))


class Executor(Protocol):
    """Runs a plan's stages in dependency order, resuming from the stage cache."""

    def run(
        self,
        plan: Sequence[Stage],
        ctx: Any,
        *,
        on_event: Callable[[StageEvent], None] | None = None,
    ) -> dict[str, dict]:
        """Every stage's record, by name. ``ctx`` is what the stages share (a run's data, an
        audit's subjects); an executor that runs stages elsewhere ships it there by pickling."""
        ...


class SerialExecutor:
    """Runs the stages one after another in this process (the default)."""

    def run(
        self,
        plan: Sequence[Stage],
        ctx: Any,
        *,
        on_event: Callable[[StageEvent], None] | None = None,
    ) -> dict[str, dict]:
        check_plan(plan)
        records: dict[str, dict] = {}
        emit = on_event or (lambda event: None)
        estimate = Estimate(plan, kept_records(plan, ctx))
        for i, stage in enumerate(plan):
            t0 = time.perf_counter()
            cache = StageCache(stage.store or ctx.out)
            key = stage_key(stage, records)
            record = cache.load(stage.name, key, stage.outputs)
            if record is not None and (stage.valid is None or stage.valid(ctx, record)):
                records[stage.name] = record
                estimate.finished.add(stage.name)
                emit(StageEvent(stage.name, StageState.SKIPPED, 0.0, i + 1, len(plan), left=estimate.left()))
                continue
            emit(StageEvent(stage.name, StageState.RUNNING, 0.0, i, len(plan), left=estimate.left()))
            result = stage.fn(ctx, stage, stage.by_role(records))
            release_freed_memory()
            seconds = time.perf_counter() - t0
            records[stage.name] = cache.store(stage, key, result, seconds)
            estimate.ran(stage.name, seconds)
            emit(StageEvent(stage.name, StageState.DONE, seconds, i + 1, len(plan), left=estimate.left()))
        return records
