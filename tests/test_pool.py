"""The default executor: stages side by side in worker processes, one PyTorch thread each."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from obfaudit.errors import ObfauditError
from obfaudit.experiments.pool import PoolExecutor, default_workers
from obfaudit.experiments.stages import Estimate, SerialExecutor, Stage, StageEvent
from tests.conftest import run_cli


@dataclass
class Ctx:
    """A run's context as executors see it: where records go, and which run it is."""

    out: Path
    tag: str = "toy"

    def cache_id(self) -> str:
        return f"toy:{self.out}"


# stage functions live at module level: a worker process imports them by name


def square(ctx, stage, inputs) -> dict:
    return {"value": stage.settings["n"] ** 2, "pid": os.getpid()}


def total(ctx, stage, inputs) -> dict:
    return {"value": sum(r["result"]["value"] for r in inputs.values()), "pid": os.getpid()}


def slow(ctx, stage, inputs) -> dict:
    time.sleep(stage.settings["seconds"])
    return {"value": 0, "pid": os.getpid()}


def refuse(ctx, stage, inputs) -> dict:
    raise ObfauditError("this stage refuses its input")


def crash(ctx, stage, inputs) -> dict:
    os._exit(3)


def broken(ctx, stage, inputs) -> dict:
    return {"value": 1 / 0}


def _plan(last=total) -> list[Stage]:
    squares = [Stage(f"sq{n}", square, settings={"n": n}, cost=2.0) for n in range(4)]
    return [*squares, Stage("sum", last, deps=tuple(s.name for s in squares))]


def test_stages_run_in_worker_processes_after_their_inputs_and_resume(tmp_path):
    events: list[StageEvent] = []
    records = PoolExecutor(workers=2).run(_plan(), Ctx(tmp_path), on_event=events.append)
    assert records["sum"]["result"]["value"] == 0 + 1 + 4 + 9
    pids = {records[f"sq{n}"]["result"]["pid"] for n in range(4)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # in the workers, not here
    assert max(e.running for e in events) == 2  # two at once
    done = [e for e in events if e.state == "done"]
    assert [e.done for e in done] == [1, 2, 3, 4, 5] and done[-1].stage == "sum"
    # each worker wrote its records where the serial executor looks for them: a rerun keeps them all
    again: list[StageEvent] = []
    kept = SerialExecutor().run(_plan(), Ctx(tmp_path), on_event=again.append)
    assert {e.state for e in again} == {"skipped"}
    assert kept["sum"]["result"] == records["sum"]["result"]


def test_each_worker_takes_up_its_own_subject(tmp_path):
    """Two subjects' attacks, two workers: each subject's stages stay on one worker (split, its data would be
    observed twice) rather than the first two stages, both of one subject, going out side by side."""
    plan = [
        Stage(
            f"{subject}-{i}",
            slow,
            settings={"seconds": 0.4, "i": i, "s": subject},
            about={"subject": subject},
        )
        for subject in ("a", "b")
        for i in range(2)
    ]
    records = PoolExecutor(workers=2, threads=1).run(plan, Ctx(tmp_path))
    pid = {name: r["result"]["pid"] for name, r in records.items()}
    assert pid["a-0"] == pid["a-1"] and pid["b-0"] == pid["b-1"] and pid["a-0"] != pid["b-0"], pid


def test_a_stage_that_refuses_is_one_line_and_the_finished_ones_stay(tmp_path):
    plan = _plan(last=refuse)
    with pytest.raises(ObfauditError, match="this stage refuses its input"):
        PoolExecutor(workers=2).run(plan, Ctx(tmp_path))
    assert {p.stem for p in (tmp_path / "stages").glob("*.json")} == {"sq0", "sq1", "sq2", "sq3"}


def test_a_bug_in_a_stage_names_the_stage_and_keeps_the_worker_traceback(tmp_path):
    with pytest.raises(RuntimeError, match="ZeroDivisionError.*in stage sum") as caught:
        PoolExecutor(workers=2).run(_plan(last=broken), Ctx(tmp_path))
    assert any("1 / 0" in note for note in caught.value.__notes__)


def test_a_worker_that_dies_is_one_line(tmp_path):
    with pytest.raises(ObfauditError, match="stage sum: its worker process died \\(exit status 3\\)"):
        PoolExecutor(workers=2).run(_plan(last=crash), Ctx(tmp_path))


def weights(ctx, stage, inputs) -> dict:
    return {"value": float(ctx.tag.weight.sum()), "pid": os.getpid()}


def test_a_context_that_holds_a_model_is_sent_by_value(tmp_path):
    import torch

    ctx = Ctx(tmp_path)
    ctx.tag = torch.nn.Linear(3, 3)  # a split sweep's cut of a model travels with its weights
    records = PoolExecutor(workers=2).run(_plan(last=weights), ctx)
    assert os.getpid() not in {r["result"]["pid"] for r in records.values()}
    assert records["sum"]["result"]["value"] == pytest.approx(float(ctx.tag.weight.sum()))


def test_a_context_that_refers_to_the_callers_script_runs_here(tmp_path, monkeypatch):
    import sys

    def made_in_a_script(x):
        return x

    made_in_a_script.__module__, made_in_a_script.__qualname__ = "__main__", "made_in_a_script"
    monkeypatch.setattr(sys.modules["__main__"], "made_in_a_script", made_in_a_script, raising=False)
    ctx = Ctx(tmp_path)
    ctx.tag = made_in_a_script  # it pickles, but a worker's __main__ is not the script that defined it
    records = PoolExecutor(workers=2).run(_plan(), ctx)
    assert {r["result"]["pid"] for r in records.values()} == {os.getpid()}


def test_a_plan_that_uses_the_gpu_runs_in_this_process(tmp_path):
    from obfaudit.experiments.stages import Resources

    plan = [Stage(f"g{n}", square, settings={"n": n}, resources=Resources(gpus=1)) for n in range(3)]
    records = PoolExecutor(workers=2).run(plan, Ctx(tmp_path))
    assert {r["result"]["pid"] for r in records.values()} == {os.getpid()}


def test_what_cannot_be_sent_to_a_worker_runs_here(tmp_path):
    ctx = Ctx(tmp_path)
    ctx.tag = lambda: None  # a lambda cannot be pickled
    records = PoolExecutor(workers=2).run(_plan(), ctx)
    assert {r["result"]["pid"] for r in records.values()} == {os.getpid()}


def test_one_stage_to_run_runs_here_without_starting_workers(tmp_path):
    plan = [Stage("only", square, settings={"n": 3})]
    records = PoolExecutor(workers=2).run(plan, Ctx(tmp_path))
    assert records["only"]["result"] == {"value": 9, "pid": os.getpid()}


def test_time_left_counts_only_the_stages_that_will_run(tmp_path):
    plan = [Stage(f"s{i}", slow, settings={"seconds": 0.2}, cost=1.0) for i in range(4)]
    SerialExecutor().run(plan[:2], Ctx(tmp_path))  # two are kept from an earlier run
    estimate = Estimate(plan, {"s0": {}, "s1": {}}, parallel=2)
    assert estimate.left() is None  # nothing measured yet
    estimate.ran("s2", 10.0)
    assert estimate.left() == pytest.approx(10.0)  # s3 alone, at 10 s per unit of cost
    events: list[StageEvent] = []
    SerialExecutor().run(plan, Ctx(tmp_path), on_event=events.append)
    lefts = [e.left for e in events if e.state == "done"]
    assert 0.1 < lefts[0] < 2.0 and lefts[-1] == 0.0  # about s3's 0.2 s, not the four stages' 0.8


def test_the_workers_follow_the_environment(monkeypatch):
    monkeypatch.setenv("OBFAUDIT_WORKERS", "3")
    assert default_workers()[0] == 3
    monkeypatch.setenv("OBFAUDIT_WORKERS", "none")
    with pytest.raises(ObfauditError, match="OBFAUDIT_WORKERS='none'"):
        default_workers()


@pytest.mark.slow
def test_an_audit_in_worker_processes_gives_the_serial_verdicts(tmp_path):
    args = (
        "audit", "--transform", "identity", "--data", "shapes", "--size", "16", "--n-train", "200",
        "--n-test", "60", "--attribute", "background", "--attack", "colornet", "linprobe", "tsne",
        "--epochs", "2", "--min-steps", "0", "--json",
    )  # fmt: skip
    serial = run_cli(
        *args,
        "--out",
        tmp_path / "serial",
        "--cache",
        tmp_path / "c1",
        "--executor",
        "serial",
        subprocess_=True,
    )
    pooled = run_cli(
        *args,
        "--out",
        tmp_path / "pool",
        "--cache",
        tmp_path / "c2",
        subprocess_=True,
        env={"OBFAUDIT_WORKERS": "2"},
    )
    assert serial.returncode == 0 and pooled.returncode == 0, pooled.stderr[-2000:]
    assert ": started" in pooled.stderr  # stages ran side by side (the serial executor never says so)
    a, b = json.loads(serial.stdout), json.loads(pooled.stdout)
    assert a["verdicts"] == b["verdicts"] and a["verdict"] == b["verdict"] == "compromised"
    # --json keeps the progress on stderr
    assert "[obfaudit] [" in pooled.stderr and pooled.stdout.lstrip().startswith("{")
