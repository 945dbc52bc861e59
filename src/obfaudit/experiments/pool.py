"""Running a plan's stages in worker processes on this machine: the default executor.

Why processes of one PyTorch thread each, and not one process with every core: PyTorch's
intra-op threads meet at the end of every operator, and the attack networks' operators last
microseconds, so when anything else takes a core for a moment every operator waits for the
thread that lost it. Measured on a 2-core machine (``../shared/PERF-NOTES.md``, 2026-12-06): a
convolutional attack step took 0.014 s on 2 threads alone, 0.071 s beside one busy process and
0.9-1.8 s beside another obfaudit; on one thread 0.023 s alone and 0.026 s beside the busy
process. Stages of an audit or a reproduction are independent once their inputs are done (the
controls of an audit, the attacks of one subject), so they run side by side, each on its share of
the cores, and a busy neighbour costs about its share of the CPU.

The workers are started with ``python -m obfaudit.experiments.pool`` (not ``multiprocessing``'s
spawn, which imports the caller's ``__main__`` again and would rerun a user's unguarded script),
and talk to this process over a socket pair with ``multiprocessing.connection`` (pickled messages
between this process and the children it started: no file or network input is unpickled). Each
receives the run's context pickled without what it loaded (as Ray's workers do: see
:mod:`.ray_executor`), loads the data itself once, runs the stages it is given and writes each
record to the run directory itself, atomically, as the serial executor would; so a killed run
resumes under any executor.

A stage goes preferably to the worker that last ran a stage of the same subject (an audit's
auditor keeps what its parties observed, e.g. the transformed training split, for the subject's
next attack); an idle worker takes up another subject before one a busy worker holds; then the
longest chain of stages after it goes first.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from obfaudit.errors import ObfauditError
from obfaudit.experiments.stages import (
    Estimate,
    SerialExecutor,
    Stage,
    StageCache,
    StageEvent,
    StageState,
    chain_costs,
    check_plan,
    kept_records,
    stage_key,
)

log = logging.getLogger("obfaudit.pool")


def subject_of(stage: Stage) -> tuple | None:
    """Which subject a stage attacks (its ``about``'s dataset and subject: a reproduction audits an
    ``identity`` on each of its datasets), or None."""
    subject = stage.about.get("subject")
    return None if subject is None else (stage.about.get("dataset"), subject)


#: At most this many workers by default: each holds its own copy of the run's data.
MAX_WORKERS = 4


def available_cpus() -> int:
    """CPUs this process may run on (a container's or ``taskset``'s share, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> tuple[int, int]:
    """(workers, PyTorch threads per worker): ``$OBFAUDIT_WORKERS`` workers, else one per CPU up to
    :data:`MAX_WORKERS`; the CPUs shared out among them."""
    cpus = available_cpus()
    given = os.environ.get("OBFAUDIT_WORKERS", "").strip()
    if given:
        try:
            workers = int(given)
        except ValueError:
            raise ObfauditError(
                f"OBFAUDIT_WORKERS={given!r}: give a whole number of worker processes"
            ) from None
        if workers < 1:
            raise ObfauditError(f"OBFAUDIT_WORKERS={given}: give 1 or more worker processes")
    else:
        workers = min(cpus, MAX_WORKERS)
    return workers, max(1, cpus // workers)


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    subject: Any = None
    """The subject of the last stage it ran (:func:`subject_of`)."""
    holds: set[str] = field(default_factory=set)
    """The stages it ran since it took up that subject: what they trained it may still hold."""
    stage: Stage | None = None
    started: float = 0.0
    contexts: set[str] = field(default_factory=set)
    """The runs whose context it already holds (it is sent once per run)."""


class PoolExecutor:
    """Runs the plan's stages in ``workers`` processes of ``threads`` PyTorch threads each.

    The workers start when the executor is made, so that they load Python and torch while the caller
    prepares its run. With one worker, or one stage to run, the stages run in this process
    (:class:`SerialExecutor`) and the workers are stopped: a worker costs seconds to start.
    """

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        default, per_worker = default_workers()
        self.workers = workers or default
        self.threads = threads or (
            per_worker if workers is None else max(1, available_cpus() // self.workers)
        )
        self._started = _start_workers(self.workers, self.threads) if self.workers > 1 else []

    def run(
        self,
        plan: Sequence[Stage],
        ctx: Any,
        *,
        on_event: Callable[[StageEvent], None] | None = None,
    ) -> dict[str, dict]:
        check_plan(plan)
        emit = on_event or (lambda event: None)
        records = kept_records(plan, ctx)
        todo = [s for s in plan if s.name not in records]
        n = min(self.workers, len(todo))
        started, self._started = self._started, []  # a run takes them; they are stopped at its end
        gpu = any(s.resources.gpus for s in todo)  # one process holds the GPU, on every core
        if n <= 1 or gpu or not _picklable(ctx):
            _stop(started, kill=True)
            return SerialExecutor().run(plan, ctx, on_event=on_event)
        _stop(started[n:], kill=True)
        workers = started[:n] or _start_workers(n, self.threads)
        return _Pool(workers, ctx, emit).run(plan, records)

    def close(self) -> None:
        """Stop the workers a run did not take."""
        _stop(self._started, kill=True)
        self._started = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the workers end with us anyway
            pass


def _picklable(ctx: Any) -> bool:
    """Whether a worker can rebuild ``ctx``: it pickles, and unpickles where ``__main__`` is not the caller's
    script (a worker's ``__main__`` is the worker itself, so a function defined in the script that runs
    obfaudit cannot be found there). Tried here, on our own bytes."""
    import types

    why = None
    try:
        blob = pickle.dumps(ctx, protocol=pickle.HIGHEST_PROTOCOL)
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            pickle.loads(blob)
        finally:
            sys.modules["__main__"] = main
    except Exception as e:  # noqa: BLE001 - whatever the context holds that cannot be sent
        why = f"{type(e).__name__}: {e}"
    if why:
        log.info(
            "the run's context cannot be sent to worker processes (%s); running its stages in this process "
            "(give the transform as MODULE:CALLABLE, a saved model or an ONNX file to run them side by side)",
            why,
        )
    return why is None


def _start_workers(n: int, threads: int) -> list[_Worker]:
    train_log = logging.getLogger("obfaudit.train")
    show = train_log.isEnabledFor(logging.INFO) and bool(train_log.handlers)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TQDM_DISABLE": "1",  # several workers' bars on one terminal would garble it
        # what this process can import, a worker can (a user's module beside the script that runs obfaudit)
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)),
    }
    workers = []
    for _ in range(n):
        mine, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "obfaudit.experiments.pool", str(theirs.fileno()), str(threads)]
            + (["--log"] if show else []),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        workers.append(_Worker(process, Connection(mine.detach())))
    return workers


def _stop(workers: Sequence[_Worker], *, kill: bool) -> None:
    """Stop ``workers``: ask them to finish (or kill them), and wait for each."""
    for w in workers:
        if kill:
            w.process.kill()
            continue
        try:
            _send(w.conn, None)
        except OSError:
            w.process.kill()
    for w in workers:
        try:
            w.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
        w.conn.close()


class _Pool:
    """One run of a plan on started workers."""

    def __init__(self, workers: list[_Worker], ctx: Any, emit: Callable[[StageEvent], None]) -> None:
        self.workers, self.ctx, self.emit = workers, ctx, emit
        self.checked: set[str] = set()
        """Stages whose stored record was looked for once their inputs were done."""

    def run(self, plan: Sequence[Stage], records: dict[str, dict]) -> dict[str, dict]:
        total = len(plan)
        estimate = Estimate(plan, records, parallel=len(self.workers))
        for stage in plan:
            if stage.name in records:
                estimate.finished.add(stage.name)
                self.emit(StageEvent(stage.name, StageState.SKIPPED, 0.0, len(estimate.finished), total))
        waiting = {s.name: s for s in plan if s.name not in records}
        chain = chain_costs(plan)
        ok = False
        try:
            while waiting or any(w.stage for w in self.workers):
                self._dispatch(waiting, records, chain, estimate, total)
                busy = {w.conn: w for w in self.workers if w.stage is not None}
                if not busy:
                    break
                for conn in wait(list(busy)):
                    self._receive(busy[conn], records, estimate, total, len(waiting))
            if waiting:  # (a plan check_plan accepted cannot leave any: said rather than returned short)
                raise RuntimeError(f"stages left with no way to run: {', '.join(waiting)}")
            ok = True
        finally:
            _stop(self.workers, kill=not ok)
        return records

    def _dispatch(self, waiting, records, chain, estimate, total) -> None:
        """Give each idle worker the ready stage it suits best; stages kept from an earlier run are
        taken as they become ready."""
        while True:
            ready = [s for s in waiting.values() if all(d in records for d in s.deps)]
            idle = [w for w in self.workers if w.stage is None]
            if not ready or not idle:
                return
            kept = False
            for stage in ready:  # inputs that ran here may still leave a stage's stored record valid
                if stage.name in self.checked:
                    continue
                self.checked.add(stage.name)
                key = stage_key(stage, records)
                record = StageCache(stage.store or self.ctx.out).load(stage.name, key, stage.outputs)
                if record is not None and (stage.valid is None or stage.valid(self.ctx, record)):
                    del waiting[stage.name]
                    records[stage.name] = record
                    estimate.finished.add(stage.name)
                    self.emit(StageEvent(stage.name, StageState.SKIPPED, 0.0, len(estimate.finished), total))
                    kept = True
            if kept:
                continue
            # a stage whose worker of choice is idle now goes first (it holds the trained network the
            # stage starts from, or the subject's views: elsewhere they would be made again), then those
            # of a subject no busy worker holds (a subject's attacks split across workers observe its data
            # twice: the proxies its adversary transforms cost seconds), then the longest chains
            held = {w.subject for w in self.workers if w.stage is not None}
            order = sorted(
                ready,
                key=lambda s: (
                    min(self._fit(w, s) for w in idle),
                    subject_of(s) is not None and subject_of(s) in held,
                    -chain[s.name],
                ),
            )
            for stage in order[:1]:  # one at a time: the next choice sees which subjects are held
                w = min(idle, key=lambda w: self._fit(w, stage))
                idle.remove(w)
                del waiting[stage.name]
                run = self.ctx.cache_id()
                context = None if run in w.contexts else self.ctx
                try:
                    _send(w.conn, (run, context, stage, stage_key(stage, records), stage.by_role(records)))
                except OSError:  # it ended while idle (a broken install, no memory)
                    raise ObfauditError(
                        f"a worker process ended before it could run stage {stage.name} "
                        f"({_ended(w.process)}); rerun to resume, or with --executor serial"
                    ) from None
                w.contexts.add(run)
                subject = subject_of(stage)
                if subject != w.subject:
                    w.holds.clear()
                w.stage, w.subject, w.started = stage, subject, time.perf_counter()
                running = sum(1 for x in self.workers if x.stage is not None)
                self.emit(
                    StageEvent(
                        stage.name,
                        StageState.RUNNING,
                        0.0,
                        len(estimate.finished),
                        total,
                        running,
                        len(waiting),
                        left=estimate.left(),
                    )
                )

    def _fit(self, w: _Worker, stage: Stage) -> int:
        """How well worker ``w`` suits ``stage`` (lower is better): it ran one of the stage's inputs of
        the same subject (whose trained network the stage starts from), it holds the stage's subject,
        or neither. A preference: when the worker of choice is busy, the stage goes elsewhere (and the
        network it starts from is trained again there)."""
        subject = subject_of(stage)
        if subject is None or subject != w.subject:
            return 2
        return 0 if any(d in w.holds for d in stage.deps) else 1

    def _receive(self, w: _Worker, records, estimate, total, waiting: int) -> None:
        stage = w.stage
        try:
            message = _receive(w.conn)
        except (EOFError, OSError):
            raise ObfauditError(
                f"stage {stage.name}: its worker process died ({_ended(w.process)}); the {len(records)} "
                "stages done are kept, rerun to resume"
            ) from None
        w.stage = None
        if message[0] == "failed":
            _, name, kind, text, trace = message
            if kind == "ObfauditError":
                raise ObfauditError(text)
            if kind == "KeyboardInterrupt":
                raise KeyboardInterrupt
            error = RuntimeError(f"{kind}: {text} (in stage {name}, in a worker process)")
            error.add_note(trace)
            raise error
        _, name, record = message
        records[name] = record
        w.holds.add(name)
        estimate.ran(name, record["seconds"])
        running = sum(1 for x in self.workers if x.stage is not None)
        self.emit(
            StageEvent(
                name,
                StageState.DONE,
                record["seconds"],
                len(estimate.finished),
                total,
                running,
                waiting,
                left=estimate.left(),
            )
        )


def _send(conn: Connection, message: Any) -> None:
    """Send ``message`` pickled by value: ``Connection.send`` would hand tensors over as shared memory,
    which only a ``multiprocessing`` child (sharing its parent's key) may attach to."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())  # from our own worker or parent, never from a file


def _ended(process: subprocess.Popen) -> str:
    """How a worker process ended, in words."""
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "it stopped answering"
    return "killed, out of memory?" if code in (-signal.SIGKILL, 137) else f"exit status {code}"


# ----------------------------------------------------------------------------- the worker


def _die_with_parent() -> None:
    """Ask Linux to end this worker when the process that started it ends (killed, crashed)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _show_log_lines() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[obfaudit] %(message)s"))
    for name in ("obfaudit.train", "obfaudit.pool"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def worker(argv: Sequence[str]) -> int:
    """A worker's loop: receive (run, context, stage, key, inputs), run the stage, store its record,
    answer with it; stop at None or when the other end closes."""
    fd, threads = int(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    _die_with_parent()
    if "--log" in argv:
        _show_log_lines()
    import torch

    from obfaudit._io import keep_freed_memory, release_freed_memory

    keep_freed_memory()
    torch.set_num_threads(threads)
    conn = Connection(fd)
    contexts: dict[str, Any] = {}
    while True:
        try:
            message = _receive(conn)
        except (EOFError, OSError):
            return 0
        except Exception as e:  # noqa: BLE001 - a stage or context that cannot be rebuilt here
            _send(conn, ("failed", "?", type(e).__name__, f"a worker could not read its stage ({e})", ""))
            return 1
        if message is None:
            return 0
        run, context, stage, key, inputs = message
        if context is not None:
            contexts.clear()  # one run at a time: drop another run's data
            contexts[run] = context
        ctx = contexts[run]
        t0 = time.perf_counter()
        try:
            result = stage.fn(ctx, stage, inputs)
            release_freed_memory()
            record = StageCache(stage.store or ctx.out).store(stage, key, result, time.perf_counter() - t0)
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent, in one message
            kind = "ObfauditError" if isinstance(e, ObfauditError) else type(e).__name__
            _send(conn, ("failed", stage.name, kind, str(e), traceback.format_exc()))
            if not isinstance(e, Exception):
                return 1
            continue
        _send(conn, ("done", stage.name, record))


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
