"""The Ray executor on a local instance of 2 CPUs: the same records as serial, resumable by
either executor, a failing stage named in one line with the finished stages kept."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from obfaudit.errors import ObfauditError  # noqa: E402
from obfaudit.experiments.ray_executor import RayExecutor  # noqa: E402
from obfaudit.experiments.stages import Stage  # noqa: E402
from obfaudit.study.context import RunContext, RunSettings  # noqa: E402
from obfaudit.study.reproduce import reproduce  # noqa: E402
from tests.conftest import run_cli, tiny_preset  # noqa: E402

TINY = tiny_preset()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance of 2 CPUs for the module (starting one costs seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _metrics(run: Path) -> dict:
    exps = json.loads((run / "results.json").read_text())["experiments"]
    return {e["id"]: (e.get("verdict"), e["metrics"]) for e in exps}


@pytest.mark.slow
def test_ray_gives_the_serial_records_and_either_resumes_the_other(local_ray, tiny_run, tmp_path):
    serial_dir, serial = tiny_run
    events = []
    ran = reproduce(RunSettings(out=tmp_path / "ray", executor="ray"), preset=TINY, log=events.append)
    assert sorted(ran["stages_run"]) == sorted(serial["stages_run"])
    a, b = _metrics(serial_dir), _metrics(tmp_path / "ray")
    assert a.keys() == b.keys()
    for key, (verdict, m) in a.items():
        assert b[key][0] == verdict, key
        for name in ("feature_accuracy", "obfuscated_test_acc", "clean_test_acc", "ssim"):
            if name in m:  # deterministic stages match exactly; training threads may move the last digits
                assert b[key][1][name] == pytest.approx(m[name], abs=2e-3), (key, name)
    flow = [re.search(r"; (\d+) running, (\d+) waiting", line) for line in events]
    assert any(flow)  # progress while Ray works: done / running / waiting
    assert max(int(m.group(1)) for m in flow if m) <= 2  # running means running: 2 CPUs, 1 each
    # every stage record was written by the task that computed it, whole
    for path in (tmp_path / "ray" / "stages").glob("*.json"):
        assert json.loads(path.read_text())["result"]
    # a killed run's gap is filled by either executor, and nothing else is redone
    victim = sorted((tmp_path / "ray" / "stages").glob("audit-*.json"))[0]
    victim.unlink()
    again = reproduce(RunSettings(out=tmp_path / "ray"), preset=TINY)
    assert again["stages_run"] == [victim.stem]
    victim.unlink()
    again = reproduce(RunSettings(out=tmp_path / "ray", executor="ray"), preset=TINY)
    assert again["stages_run"] == [victim.stem]


def _ok(ctx, stage, inputs):
    return {"value": 1}


def _broken(ctx, stage, inputs):
    raise ValueError("the disk is full")


def test_a_failing_stage_is_one_line_and_the_finished_stages_stay(local_ray, tmp_path):
    ctx = RunContext(settings=RunSettings(out=tmp_path), preset=TINY, out=tmp_path)
    plan = [
        Stage("first", _ok),
        Stage("second", _broken, deps=("first",)),
        Stage("third", _ok, deps=("second",)),
    ]
    executor = RayExecutor()
    with pytest.raises(ObfauditError) as e:
        executor.run(plan, ctx)
    assert executor.nodes == {"first": ray.get_runtime_context().get_node_id()}  # where each stage ran
    assert str(e.value).startswith("stage second failed on Ray: ValueError: the disk is full")
    assert "\n" not in str(e.value)
    assert (tmp_path / "stages" / "first.json").exists()
    assert not (tmp_path / "stages" / "third.json").exists()


def test_cli_refuses_an_address_without_ray_and_a_missing_ray_is_one_line(tmp_path):
    r = run_cli("reproduce", "--preset", "smoke", "--address", "auto", "--out", tmp_path / "r")
    assert r.returncode == 1 and "--executor ray" in r.stderr
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ray.py").write_text("raise ImportError('no ray here')\n")
    r = run_cli(
        "reproduce", "--preset", "smoke", "--executor", "ray", "--out", tmp_path / "r",
        env={"PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}, subprocess_=True,
    )  # fmt: skip
    assert r.returncode == 1 and "pip install 'obfaudit[ray]'" in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.slow
def test_audit_repeats_on_ray_equal_the_serial_audit(local_ray, tmp_path):
    from obfaudit.audit import AuditJob, audit

    job = AuditJob(
        transform="identity",
        attacks=("colornet",),
        n_train=300,
        n_test=150,
        n_proxy=600,
        epochs=2,
        min_steps=0,
        repeats=2,
        out=tmp_path / "serial",
        cache=tmp_path / "cache-serial",
    )
    serial = audit(job).to_dict()
    on_ray = audit(replace(job, executor="ray", out=tmp_path / "ray", cache=tmp_path / "cache-ray")).to_dict()
    assert on_ray["verdicts"] == serial["verdicts"] == {"identity": "compromised", "null": "not compromised"}
    a, b = serial["records"][0]["metrics"], on_ray["records"][0]["metrics"]
    assert b["repeats"]["seeds"] == [0, 1] and b["repeats"]["feature_accuracy"]["n"] == 2
    assert b["feature_accuracy"] == pytest.approx(a["feature_accuracy"], abs=0.02)
    assert b["repeats"]["feature_accuracy"]["mean"] == pytest.approx(
        a["repeats"]["feature_accuracy"]["mean"], abs=0.02
    )
