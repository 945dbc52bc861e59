import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from obfaudit.experiments.stages import SerialExecutor, Stage, check_plan
from obfaudit.study.context import RunSettings
from tests.conftest import SUBPROCESS_ENV, run_cli, tiny_preset

EXPECTED_FIGURES = (
    "fig7_mnist_mlp_reconstructions.png",
    "fig8_colored-mnist_mlp_reconstructions.png",
    "fig8b_colored-mnist_cnn_reconstructions.png",
    "fig9_colornet_fa.png",
    "fig10a_noisynet_fa.png",
    "fig10b_pathnet_fa.png",
    "fig11a_tsne_mlp_b64.png",
    "fig_privacy_utility.png",
)


def refuse(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


#: The smallest plan with every kind of stage (InfNet, judge, ObfNet, audit, controls, cost).
TINY = dict(
    bottlenecks=(8,), mnist_bottlenecks=(), archs=("mlp",), tsne=(), n_train=300, n_test=140, slow_on=()
)


def reproduce_cmd(out: Path, *extra: str) -> list[str]:
    return ["reproduce", "--preset", "smoke", "--out", str(out), *extra]


def env():
    return {**os.environ, **SUBPROCESS_ENV}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    r = run_cli(*reproduce_cmd(out, "--json"))
    assert r.returncode == 0, r.stderr[-3000:]
    return out, json.loads(r.stdout)


@pytest.mark.slow
def test_smoke_run_writes_every_output(smoke_run):
    out, summary = smoke_run
    for name in ("config.json", "results.json", "results.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    for fig in EXPECTED_FIGURES:
        assert (out / "figures" / fig).read_bytes()[:4] == b"\x89PNG", fig
    results = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    attacks = {
        (e["arch"], e["bottleneck"], e["attack"])
        for e in results["experiments"]
        if e["kind"] == "attack" and e["dataset"] == "colored-mnist"
    }
    for arch in ("mlp", "cnn"):
        for n in (8, 64):
            for a in ("recnet", "colornet", "noisynet", "pathnet"):
                assert (arch, n, a) in attacks
    assert ("mlp", 64, "tsne") in attacks
    # the stronger attacks: probes everywhere, the slow ones on the preset's slow_on ObfNet only
    for arch in ("mlp", "cnn"):
        for n in (8, 64):
            assert {(arch, n, "linprobe"), (arch, n, "knnprobe")} <= attacks
    assert {("mlp", 64, "decoder"), ("mlp", 64, "inversion-decoder")} <= attacks
    assert not {a for a in attacks if a[2] in ("decoder", "inversion-decoder") and a[:2] != ("mlp", 64)}
    controls = {(e["subject"], e["attack"]) for e in results["experiments"] if e["kind"] == "control"}
    assert ("identity", "colornet") in controls and ("null", "pathnet") in controls
    assert any(e["kind"] == "cost" for e in results["experiments"])
    assert results["findings"] and all("evidence" in f for f in results["findings"])
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == len(results["experiments"]) + 1
    models = list((out / "models").glob("*.safetensors"))
    assert (
        len(models) == 2 + 1 + 4 + 1
    )  # two InfNets, one MNIST ObfNet, four Colored-MNIST ObfNets, the judge
    assert summary["stages_skipped"] == []


@pytest.mark.slow
def test_report_is_self_contained(smoke_run):
    out, _ = smoke_run
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= len(EXPECTED_FIGURES)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "embedded 5,000-image MNIST subset" in page
    # the verdict tables lead with each party's worst case; the new attacks are compared with the study's
    assert "server: strongest F_a" in page and "adversary: best SSIM" in page
    verdicts = page[page.index('id="verdicts"') : page.index('id="beyond"')]
    assert verdicts.index("server: strongest F_a") < verdicts.index("recnet SSIM")
    beyond = page[page.index('id="beyond"') : page.index('id="controls"')]
    assert "ObfNet-MLP</td><td>64</td>" in beyond and "On " in beyond and "of 4 ObfNets" in beyond
    assert "verdict" in page and "Controls" in page and "Table 1" in page


def _tiny(out: Path):
    """Run (or resume) the tiny plan into ``out``, in this process."""
    from obfaudit.commands.reproduce import Reproduction
    from obfaudit.study.reproduce import reproduce as run

    return Reproduction(**run(RunSettings(preset="smoke", out=out), preset=tiny_preset()))


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


@pytest.mark.slow
def test_killed_run_resumes_with_identical_results(tiny_run, tmp_path):
    """A real process killed with SIGKILL after its first stages; the rerun keeps them and ends where an
    uninterrupted run ends."""
    out = tmp_path / "killed"
    script = (
        "import sys; from pathlib import Path; from obfaudit.study.context import RunSettings; "
        "from obfaudit.study.reproduce import reproduce; from tests.conftest import tiny_preset; "
        "reproduce(RunSettings(preset='smoke', out=Path(sys.argv[1])), preset=tiny_preset())"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
        cwd=Path(__file__).parent.parent,
    )
    stages = out / "stages"
    total = len(tiny_run[1]["stages_run"])
    deadline = time.time() + 240
    while time.time() < deadline and len(list(stages.glob("*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.read_bytes() for p in stages.glob("*.json")}
    assert 3 <= len(finished) < total, sorted(finished)
    assert not (out / "report.html").exists()
    summary = _tiny(out)
    assert set(summary.stages_skipped) >= {Path(n).stem for n in finished}
    for name, blob in finished.items():  # finished work is kept, not redone
        assert (stages / name).read_bytes() == blob

    # same seed, same machine: the resumed run's results equal the uninterrupted run's
    def metrics(run):
        exps = json.loads((run / "results.json").read_text())["experiments"]
        return {e["id"]: e["metrics"] for e in exps if e["kind"] in ("attack", "obfnet", "infnet", "control")}

    full, resumed = metrics(tiny_run[0]), metrics(out)
    assert full.keys() == resumed.keys() and len(full) > 10
    for key in full:
        a, b = full[key], resumed[key]
        for m in ("feature_accuracy", "obfuscated_test_acc", "clean_test_acc", "ssim"):
            if m in a:
                assert a[m] == pytest.approx(b[m], abs=1e-6), (key, m)


def test_rerun_skips_everything(tiny_run, tmp_path):
    out = _copy(tiny_run[0], tmp_path / "again")
    before = {p.name: p.read_bytes() for p in (out / "stages").iterdir()}
    assert _tiny(out).stages_run == []
    assert {p.name: p.read_bytes() for p in (out / "stages").iterdir()} == before


def test_corrupt_stage_is_recomputed(tiny_run, tmp_path):
    out = _copy(tiny_run[0], tmp_path / "copy")
    (out / "stages" / "obfnet-colored-mnist-mlp-b8.json").write_text("{ truncated")
    assert _tiny(out).stages_run == ["obfnet-colored-mnist-mlp-b8"]  # its key is unchanged


def test_damaged_records_are_recomputed_and_reported_around(tiny_run, tmp_path):
    """Valid JSON of the wrong shape, or a result missing a field: no traceback anywhere."""
    out = _copy(tiny_run[0], tmp_path / "damaged")
    (out / "stages" / "cost.json").write_text("[]")
    stage = "audit-colored-mnist-mlp-b8-colornet"
    record = json.loads((out / "stages" / f"{stage}.json").read_text())
    del record["result"]["record"]
    (out / "stages" / f"{stage}.json").write_text(json.dumps(record))
    r = run_cli("report", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    left = {n["part"] for n in json.loads((out / "results.json").read_text())["not_run"]}
    assert f"stage {stage}" in left  # named, not silently dropped
    assert sorted(_tiny(out).stages_run) == [stage, "cost"]


def test_report_command_rebuilds_without_training(tiny_run, tmp_path):
    out = _copy(tiny_run[0], tmp_path / "report")
    (out / "report.html").unlink()
    r = run_cli("report", out)
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").exists()


@pytest.mark.slow
def test_every_json_file_is_strict(smoke_run):
    """null, never NaN or Infinity: a browser's JSON.parse reads every file obfaudit writes."""
    out, _ = smoke_run
    files = [*out.glob("*.json"), *(out / "stages").glob("*.json"), *(out / "models").glob("*.json")]
    assert len(files) > 10
    for path in files:
        json.loads(path.read_text(), parse_constant=refuse)
    # non-finite numbers (an identical reconstruction's PSNR, an undefined silhouette) become null
    import numpy as np

    from obfaudit._io import dumps

    assert json.loads(dumps({"a": float("nan"), "b": np.float32("inf"), "c": [1.5]})) == {
        "a": None,
        "b": None,
        "c": [1.5],
    }


@pytest.mark.slow
def test_results_carry_typed_settings(smoke_run):
    out, _ = smoke_run
    results = json.loads((out / "results.json").read_text())
    attack = next(e for e in results["experiments"] if e["id"] == "audit-colored-mnist-cnn-b64/pathnet")
    assert (attack["dataset"], attack["arch"], attack["bottleneck"], attack["attribute"]) == (
        "colored-mnist",
        "cnn",
        64,
        "colour",
    )
    assert attack["party"] == "adversary" and attack["output"] == "attribute"
    assert {n["part"].split(" (")[0] for n in results["not_run"]} == {"scaling study"}
    page = (out / "report.html").read_text()
    assert 'id="not-run"' in page and "scaling study" in page and "<nav>" in page
    assert "above 50.0%" in page  # the adversary checked against the study's own number


def _stage(name, setting, calls, deps=(), version=1):
    def fn(ctx, stage, inputs):
        calls.append(name)
        return {"v": setting}

    return Stage(name, fn, settings={"x": setting}, deps=deps, version=version)


def test_changing_a_setting_recomputes_only_what_depends_on_it(tmp_path):
    from types import SimpleNamespace

    ctx = SimpleNamespace(out=tmp_path)
    calls = []

    def run(a, b, version=1):
        SerialExecutor().run(
            [_stage("a", a, calls, version=version), _stage("b", b, calls, deps=("a",))], ctx
        )

    run(1, 1)
    run(1, 1)
    assert calls == ["a", "b"]
    run(1, 2)  # only b's own setting changed
    assert calls == ["a", "b", "b"]
    run(2, 2)  # a changed: b depends on it
    assert calls == ["a", "b", "b", "a", "b"]
    run(2, 2, version=2)  # a's code changed what it computes: a and everything after it
    assert calls == ["a", "b", "b", "a", "b", "a", "b"]


def test_a_plan_must_list_dependencies_first():
    calls = []
    with pytest.raises(ValueError, match="not before it"):
        check_plan([_stage("b", 1, calls, deps=("a",)), _stage("a", 1, calls)])


def test_a_record_of_the_wrong_shape_is_recomputed(tmp_path):
    from types import SimpleNamespace

    ctx, calls = SimpleNamespace(out=tmp_path), []
    plan = [_stage("a", 1, calls)]
    SerialExecutor().run(plan, ctx)
    (tmp_path / "stages" / "a.json").write_text("[]")
    records = SerialExecutor().run(plan, ctx)
    assert calls == ["a", "a"] and records["a"]["result"] == {"v": 1}


@pytest.mark.parametrize(
    "args,code,text",
    [
        (["--preset", "nope"], 2, "invalid choice"),
        (["--preset", "paper"], 1, "--data-root"),
        (["--preset", "smoke", "--device", "tpu"], 2, "unknown device"),
    ],
)
def test_bad_arguments_fail_before_work(tmp_path, args, code, text):
    r = run_cli("reproduce", "--out", tmp_path / "x", *args)
    assert r.returncode == code and text in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x" / "stages").exists()


def test_memory_freed_by_a_stage_goes_back_to_the_kernel_before_the_next(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import obfaudit.experiments.stages as stages

    trims = []
    monkeypatch.setattr(stages, "release_freed_memory", lambda: trims.append(1))
    ctx, calls = SimpleNamespace(out=tmp_path), []
    plan = [_stage("a", 1, calls), _stage("b", 1, calls, deps=("a",))]
    SerialExecutor().run(plan, ctx)
    assert len(trims) == 2
    SerialExecutor().run(plan, ctx)  # both finished: nothing ran, nothing to hand back
    assert len(trims) == 2


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_release_freed_memory_lowers_the_resident_size_keep_freed_memory_holds():
    code = """
import torch
from obfaudit._io import keep_freed_memory, release_freed_memory
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) // 1024
assert keep_freed_memory()
blocks = [torch.ones(256, 1024) for _ in range(400)]  # 400 MB in 1 MB blocks, below the mmap threshold
keep = blocks[::50]  # a few survivors: the heap cannot just shrink from its top
del blocks
held = rss()
assert release_freed_memory()
print(held, rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    held, after = map(int, out.stdout.split())
    assert held > 350 and after < held - 250, (held, after)


@pytest.mark.slow
def test_a_sweep_on_generated_shapes_reports_their_hue(tmp_path):
    """The shapes preset, shrunk: the study's sweep on another dataset and attribute, every part
    of the report drawn for it, and what cannot run there said."""
    from obfaudit.study.presets import get_preset
    from obfaudit.study.reproduce import reproduce

    preset = get_preset(
        "shapes", size=32, bottlenecks=(16,), n_train=300, n_test=100, infnet_epochs=1, obfnet_epochs=1,
        attack_epochs=1, min_steps=20, attacks=("recnet", "colornet", "linprobe", "noisynet"), tsne=(),
    )  # fmt: skip
    reproduce(RunSettings(preset="shapes", out=tmp_path / "run"), preset=preset)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (results["dataset"], results["attribute"], results["chance"]) == ("shapes", "hue", 0.25)
    assert {e["dataset"] for e in results["experiments"] if e["kind"] == "obfnet"} == {"shapes"}
    assert any(n["part"] == "noisynet on shapes" and "proxy" in n["reason"] for n in results["not_run"])
    figures = {Path(f).name for f in results["figures"]}
    assert {"fig8_shapes_mlp_reconstructions.png", "fig9_colornet_fa.png"} <= figures
    page = (tmp_path / "run" / "report.html").read_text()
    assert "generated shapes at 32x32" in page and "noisynet on shapes" in page
    assert "Colored-MNIST multiplies" not in page
