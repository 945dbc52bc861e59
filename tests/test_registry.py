"""The attack registry: a new attack is one module, and it flows through everything."""

import json
import textwrap

import pytest

from obfaudit.attacks import attack_names, register_attack, unregister_attack
from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.study.context import RunSettings
from obfaudit.study.presets import get_preset
from obfaudit.study.reproduce import reproduce

#: A third-party attack that needs no training: the palette colour of what is sent.
TOY_PLUGIN = textwrap.dedent('''
    from obfaudit.attacks import Attack, Output, Party, read_colour, register_attack


    @register_attack("toy")
    class PaletteReader(Attack):
        """Reads the palette colour straight off the traffic (no training)."""

        party = Party.THIRD_PARTY
        needs = ("traffic", "attribute")
        output = Output.ATTRIBUTE
        description = "third party: the palette colour of the traffic itself"

        def fit(self, knowledge):
            return {"trained": False}

        def infer(self, traffic):
            return read_colour(traffic[:, :3])
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("toy_plugin", None)
    importlib.import_module("toy_plugin")
    yield tmp_path
    unregister_attack("toy")
    sys.modules.pop("toy_plugin", None)


def test_registry_refuses_malformed_attacks():
    with pytest.raises(TypeError, match="party"):

        @register_attack("broken")
        class NoParty(Attack):
            output = Output.IMAGE

    with pytest.raises(ValueError, match="needs"):

        @register_attack("greedy")
        class Greedy(Attack):
            party = Party.ADVERSARY
            output = Output.ATTRIBUTE
            needs = ("test_labels",)

    assert "broken" not in attack_names() and "greedy" not in attack_names()


@pytest.mark.slow
def test_toy_attack_flows_through_results_and_report(toy, tmp_path):
    assert attack_names()[-1] == "toy"
    preset = get_preset(
        "smoke",
        bottlenecks=(64,),
        mnist_bottlenecks=(),
        archs=("mlp",),
        attacks=("colornet", "toy"),
        tsne=(),
        n_train=300,
        n_test=140,
    )
    out = tmp_path / "run"
    reproduce(RunSettings(preset="smoke", out=out), preset=preset)
    results = json.loads((out / "results.json").read_text())
    toy_rows = [e for e in results["experiments"] if e["attack"] == "toy"]
    assert {e["kind"] for e in toy_rows} == {"attack", "control"}
    identity = next(e for e in toy_rows if e["subject"] == "identity")
    assert identity["metrics"]["feature_accuracy"] == 1.0 and identity["verdict"] == "compromised"
    assert identity["party"] == "third-party" and identity["output"] == "attribute"
    assert sum(",toy," in line for line in (out / "results.csv").read_text().splitlines()) == len(toy_rows)
    page = (out / "report.html").read_text()
    assert "toy F_a" in page  # a column of the verdict table
    assert "the palette colour of the traffic itself" in page  # the threat-model table
    assert (out / "figures" / "fig_toy_fa.png").exists()


@pytest.mark.slow
def test_toy_attack_in_the_cli(toy, tmp_path, cli):
    env = {"OBFAUDIT_PLUGINS": "toy_plugin", "PYTHONPATH": str(toy)}
    r = cli("audit", "--help", env=env, subprocess_=True)
    assert r.returncode == 0 and "toy" in r.stdout
    r = cli("reproduce", "--help")  # in this process the fixture registered it
    assert "toy" in r.stdout
    r = cli(
        "audit",
        "--attack",
        "toy",
        "--transform",
        "identity",
        "--n-test",
        "70",
        "--out",
        tmp_path / "a",
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(x["subject"], x["attack"]) for x in out["records"]] == [("identity", "toy")]
    assert set(out["verdicts"]) == {"identity", "null"}
    r = cli("audit", "--help", env={"OBFAUDIT_PLUGINS": "no_such_plugin"}, subprocess_=True)
    assert r.returncode == 1 and "no_such_plugin" in r.stderr and "Traceback" not in r.stderr


def _tones(split: str, *, seed: int, data_root=None, download: bool = False, n=None):
    """A generated dataset: 16x16 squares and circles on a dark or light background (the attribute)."""
    import torch

    from obfaudit.data import ImageSet

    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    count = n or (200 if split == "train" else 100)
    shape = torch.randint(0, 2, (count,), generator=g)
    tone = torch.randint(0, 2, (count,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    circle = ((yy - 8) ** 2 + (xx - 8) ** 2 < 25).float()
    square = ((yy - 8).abs() < 5).float() * ((xx - 8).abs() < 5).float()
    x = torch.where(shape.view(-1, 1, 1) == 1, circle, square).unsqueeze(1).repeat(1, 3, 1, 1)
    x = (
        0.3 * x + 0.2 + 0.5 * tone.view(-1, 1, 1, 1) + 0.05 * torch.rand(count, 3, 16, 16, generator=g)
    ).clamp(0, 1)
    return ImageSet(
        x,
        {"shape": shape, "tone": tone},
        "tones",
        split,
        {"shape": ("square", "circle"), "tone": ("dark", "light")},
    )


def test_a_new_dataset_is_one_registration(tmp_path, cli):
    from obfaudit.data import DatasetSpec, register_dataset
    from obfaudit.data.registry import unregister_dataset

    register_dataset(
        DatasetSpec("tones", _tones, "shapes on dark or light", task="shape", attributes=("tone",))
    )
    try:
        r = cli("data", "stats", "tones", "--split", "test")
        assert r.returncode == 0 and "tone" in r.stdout, r.stderr
        r = cli("audit", "--transform", "identity", "--data", "tones", "--attack", "linprobe",
                "--no-controls", "--out", tmp_path / "a", "--json")  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        result = json.loads(r.stdout)
        assert result["baselines"]["attribute"] == "tone" and result["verdict"] == "compromised"
    finally:
        unregister_dataset("tones")
    r = cli("data", "stats", "tones")
    assert r.returncode == 2 and "invalid choice" in r.stderr


class CountingExecutor:
    """A test executor: the serial one, counting the stages it is handed."""

    runs: list[int] = []

    def run(self, plan, ctx, *, on_event=None):
        from obfaudit.experiments.stages import SerialExecutor

        CountingExecutor.runs.append(len(plan))
        return SerialExecutor().run(plan, ctx, on_event=on_event)


def test_a_new_executor_is_one_registration(tmp_path):
    from obfaudit.audit import AuditJob, audit
    from obfaudit.experiments.executors import executor_names, register_executor, unregister_executor

    register_executor("counting", "tests.test_registry:CountingExecutor", description="serial, counted")
    try:
        assert "counting" in executor_names()
        job = AuditJob(transform="identity", attacks=("colornet",), executor="counting", n_train=200,
                       n_test=70, epochs=1, out=tmp_path / "a", cache=tmp_path / "c")  # fmt: skip
        assert audit(job).verdicts["identity"] is not None
        assert CountingExecutor.runs == [2]  # identity and null, colornet each
    finally:
        unregister_executor("counting")
