"""The attack registry: a new attack is one module, and it flows through everything."""

import json
import textwrap

import pytest

from obfaudit.attacks import attack_names, register_attack, unregister_attack
from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.experiments.context import RunSettings
from obfaudit.experiments.presets import get_preset
from obfaudit.experiments.reproduce import reproduce

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


def test_toy_attack_in_the_cli(toy, tmp_path, cli):
    env = {"OBFAUDIT_PLUGINS": "toy_plugin", "PYTHONPATH": str(toy)}
    r = cli("attack", "--help", env=env, subprocess_=True)
    assert r.returncode == 0 and "toy" in r.stdout
    r = cli("reproduce", "--help", env=env, subprocess_=True)
    assert "toy" in r.stdout
    r = cli(
        "attack",
        "--attack",
        "toy",
        "--control",
        "identity",
        "--n-test",
        "70",
        "--out",
        tmp_path / "a",
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)["records"]
    assert {(x["subject"], x["attack"]) for x in records} == {("identity", "toy"), ("null", "toy")}
    r = cli("attack", "--help", env={"OBFAUDIT_PLUGINS": "no_such_plugin"}, subprocess_=True)
    assert r.returncode == 1 and "no_such_plugin" in r.stderr and "Traceback" not in r.stderr
