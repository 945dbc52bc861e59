"""Running a plan on Ray: the same stages as tasks, on a laptop or a cluster.

The driver walks the plan as the serial executor does: a stage whose inputs are done gets
its key; a finished record with that key is kept; anything else becomes a Ray task with
the CPUs and GPUs the stage declares. The task receives the stage, its inputs' records and
the run's context, pickled without what it loaded (never data or models: the worker loads
those itself), runs the stage, and writes its record to the run directory itself,
atomically, as the serial executor would, so either executor resumes what the other left.
On a cluster the run directory must therefore be on storage every node sees at the same path.

Each worker process keeps its context (the loaded data and proxies) between the tasks it
runs, and runs PyTorch with as many threads as its task has CPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from obfaudit._io import release_freed_memory
from obfaudit.errors import ObfauditError
from obfaudit.experiments.stages import (
    Stage,
    StageCache,
    StageEvent,
    StageState,
    chain_costs,
    check_plan,
    stage_key,
)

log = logging.getLogger("obfaudit.ray")

#: Each worker's context (its loaded data and proxies), by run.
_WORKER_RUNS: dict[str, Any] = {}


def import_ray():
    """The ray module, or one line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise ObfauditError("--executor ray needs Ray: pip install 'obfaudit[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """Ray, started on this machine's cores (and stopped after) or joined at ``address``
    (auto or HOST:PORT); a session already running in this process is used as it is."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kw = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            cpus = num_cpus or int(os.environ.get("OBFAUDIT_RAY_CPUS", 0)) or os.cpu_count() or 1
            ray.init(num_cpus=cpus, **kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ObfauditError(
            f"cannot start Ray on {address or 'this machine'} ({type(e).__name__}: {e})"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_stage(ctx, stage: Stage, key: str, inputs: dict, threads: int) -> tuple[dict, str]:
    """Run one stage in this (worker) process and store its record; returns the record and the
    Ray node it ran on.

    ``ctx`` arrives pickled, without what it had loaded; the first one of a run is kept (by its
    ``cache_id``), so the data it loads serves the run's later stages on this worker too.
    """
    import torch

    run = ctx.cache_id()
    if run not in _WORKER_RUNS:
        _WORKER_RUNS.clear()  # one run at a time per worker: drop another run's data
        _WORKER_RUNS[run] = ctx
    ctx = _WORKER_RUNS[run]
    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    result = stage.fn(ctx, stage, inputs)
    release_freed_memory()  # a worker runs many stages: as the serial executor does
    record = StageCache(stage.store or ctx.out).store(stage, key, result, time.perf_counter() - t0)
    import ray

    return record, ray.get_runtime_context().get_node_id()


def _reason(error: BaseException) -> str:
    """The original exception of a failed task, in one line."""
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, ObfauditError):
        return str(cause)
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".rstrip(": ")


class RayExecutor:
    """Runs the plan's stages as Ray tasks, in dependency order, resuming from the stage cache.

    ``address``: None starts a local Ray instance on this machine's cores (stopped at the
    end); ``auto`` or ``HOST:PORT`` joins a running cluster. ``num_cpus`` caps the local one.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import_ray()  # a missing Ray is one line before any work
        self.address = address
        self.num_cpus = num_cpus
        self.nodes: dict[str, str] = {}
        """The Ray node id each stage that ran here ran on (after :meth:`run`)."""

    def run(
        self,
        plan: Sequence[Stage],
        ctx: Any,
        *,
        on_event: Callable[[StageEvent], None] | None = None,
    ) -> dict[str, dict]:
        check_plan(plan)
        self.nodes = {}
        with ray_session(self.address, self.num_cpus) as ray:
            return self._run(ray, plan, ctx, on_event or (lambda event: None))

    def _run(self, ray, plan: Sequence[Stage], ctx: Any, emit) -> dict[str, dict]:
        remote = ray.remote(max_retries=1)(run_stage)
        try:
            payload = ray.put(ctx)
        except Exception as e:  # noqa: BLE001 - whatever the context holds that cannot be pickled
            raise ObfauditError(
                f"the run's context cannot be sent to Ray workers ({type(e).__name__}: {e}); give the "
                "transform as MODULE:CALLABLE, a saved model or an ONNX file"
            ) from None
        records: dict[str, dict] = {}
        waiting = {s.name: s for s in plan}
        running: dict = {}  # ObjectRef -> (stage, start time)
        failed: tuple[str, BaseException] | None = None
        total = len(plan)

        def event(name: str, state: StageState, seconds: float = 0.0) -> None:
            emit(StageEvent(name, state, seconds, len(records), total, len(running), len(waiting)))

        todo: dict[str, tuple[str, dict]] = {}  # ready stages with no stored record: (key, inputs)
        chain = chain_costs(plan)
        used = {"CPU": 0.0, "GPU": 0.0}

        def fits(r, have: dict) -> bool:
            """Room on the cluster now (Ray would queue it; here it waits, so that "running" means
            running and the longest chains start first)."""
            return not running or (
                used["CPU"] + r.cpus <= have.get("CPU", 1.0) + 1e-9
                and used["GPU"] + r.gpus <= have.get("GPU", 0.0) + 1e-9
            )

        def submit_ready() -> bool:
            """Keep finished stages, start what fits; True if a stage was kept (more may be ready)."""
            kept = False
            have = ray.cluster_resources()  # once per pass: a call to Ray's control store
            ready = [s for s in waiting.values() if all(d in records for d in s.deps)]
            for stage in sorted(ready, key=lambda s: -chain[s.name]):  # longest chains first
                name = stage.name
                if name not in todo:
                    inputs = stage.by_role(records)
                    key = stage_key(stage, records)
                    record = StageCache(stage.store or ctx.out).load(stage.name, key, stage.outputs)
                    if record is not None and (stage.valid is None or stage.valid(ctx, record)):
                        del waiting[name]
                        records[name] = record
                        event(name, StageState.SKIPPED)
                        kept = True
                        continue
                    todo[name] = (key, inputs)
                r = stage.resources
                if not fits(r, have):
                    continue
                key, inputs = todo.pop(name)
                del waiting[name]
                ref = remote.options(num_cpus=r.cpus, num_gpus=r.gpus, name=name).remote(
                    payload, stage, key, inputs, int(max(1, r.cpus))
                )
                running[ref] = (stage, time.perf_counter())
                used["CPU"] += r.cpus
                used["GPU"] += r.gpus
                event(name, StageState.RUNNING)
            return kept

        try:
            while waiting or running:
                while failed is None and submit_ready():
                    pass
                if not running:
                    break
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    stage, t0 = running.pop(ref)
                    used["CPU"] -= stage.resources.cpus
                    used["GPU"] -= stage.resources.gpus
                    try:
                        records[stage.name], self.nodes[stage.name] = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the first failure stops new submissions
                        failed = failed or (stage.name, e)
                        continue
                    event(stage.name, StageState.DONE, time.perf_counter() - t0)
        except BaseException:  # Ctrl-C: what finished is stored; stop what runs
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        if len(set(self.nodes.values())) > 1:
            spread = Counter(self.nodes.values())
            log.info(
                "ray: %d stages ran on %d nodes (%s)",
                len(self.nodes),
                len(spread),
                ", ".join(f"{n[:8]}: {c}" for n, c in spread.most_common()),
            )
        if failed is not None:
            name, error = failed
            raise ObfauditError(
                f"stage {name} failed on Ray: {_reason(error)} "
                f"({len(records)} of {total} stages are done and kept; rerun to resume)"
            )
        return records
