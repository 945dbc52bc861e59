"""The CLI end to end, in subprocesses, as a user runs it."""

import json
import textwrap

import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import run_cli

    d = tmp_path_factory.mktemp("models")
    r = run_cli(
        "train",
        "infnet",
        "--arch",
        "mlp",
        "--data",
        "colored-mnist",
        "--epochs",
        "1",
        "--patience",
        "0",
        "--out",
        d,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    infnet = json.loads(r.stdout)["model"]
    r = run_cli(
        "train",
        "obfnet",
        "--arch",
        "mlp",
        "--bottleneck",
        "8",
        "--infnet",
        infnet,
        "--shift",
        "1",
        "--epochs",
        "1",
        "--patience",
        "0",
        "--out",
        d,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    return d, infnet, json.loads(r.stdout)


def test_train_writes_models_with_sidecars(trained):
    d, infnet, obf = trained
    side = json.loads((d / "obfnet-mlp-b8-colored-mnist.json").read_text())
    assert side["arch"] == "obfnet_mlp" and side["kwargs"]["bottleneck"] == 8
    assert side["dataset"] == "colored-mnist" and "obfuscated_test_acc" in side["metrics"]
    assert side["train_config"]["shift"] == 1
    assert 0.1 < obf["obfuscated_test_acc"] <= 1.0


def test_obfnet_uses_the_infnet_split_whatever_its_seed(trained, cli, tmp_path):
    d, infnet, _ = trained
    args = ("--arch", "mlp", "--bottleneck", "4", "--epochs", "1", "--out", tmp_path, "--json")
    r = cli("train", "obfnet", "--infnet", infnet, "--seed", "3", *args)
    assert r.returncode == 0, r.stderr
    inf_side = json.loads((d / "infnet-mlp-colored-mnist.json").read_text())
    # the InfNet scored on its own test split: a seed-3 split would contain its training images
    assert json.loads(r.stdout)["clean_test_acc"] == inf_side["metrics"]["clean_test_acc"]


def test_obfuscate_grid(trained, cli, tmp_path):
    d, _, obf = trained
    r = cli("obfuscate", "--obfnet", obf["model"], "--out", tmp_path, "--n", "6")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "obfuscated-obfnet-mlp-b8-colored-mnist.png").read_bytes()[:4] == b"\x89PNG"


def test_train_refuses_bad_arguments_before_training(trained, cli, tmp_path):
    d, infnet, _ = trained
    for args in (
        ["--bottleneck", "0"],
        ["--bottleneck", "-3"],
        ["--arch", "rnn", "--bottleneck", "8"],
        ["--bottleneck", "8", "--shift", "-1"],
    ):
        r = cli("train", "obfnet", "--infnet", infnet, "--out", tmp_path, *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
    # an InfNet trained on Colored-MNIST (3 channels) cannot serve MNIST (1 channel)
    r = cli("train", "obfnet", "--infnet", infnet, "--bottleneck", "8", "--data", "mnist", "--out", tmp_path)
    assert r.returncode == 1 and "shape" in r.stderr and r.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*.safetensors"))


def test_corrupt_model_is_one_line(trained, cli, tmp_path):
    d, _, obf = trained
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\0" * 10)
    (tmp_path / "bad.json").write_text((d / "obfnet-mlp-b8-colored-mnist.json").read_text())
    r = cli("obfuscate", "--obfnet", bad, "--out", tmp_path / "x.png")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "attacks,extra,figure",
    [
        (["recnet"], [], "reconstructions.png"),
        (["colornet"], [], "feature_accuracy.png"),
        (["pathnet"], ["--n-proxy", "700"], "feature_accuracy.png"),
        (["tsne"], ["--n-tsne", "120"], "tsne.png"),
    ],
)
def test_audit_with_chosen_attacks(trained, cli, tmp_path, attacks, extra, figure):
    """``audit --attack NAME``: those attacks only, on the saved ObfNet and its three controls."""
    _, _, obf = trained
    r = cli(
        "audit",
        "--attack",
        *attacks,
        "--transform",
        obf["model"],
        "--out",
        tmp_path,
        "--json",
        "--epochs",
        "2",
        "--min-steps",
        "0",
        "--n-train",
        "500",
        "--n-test",
        "140",
        *extra,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {rec["subject"] for rec in out["records"]} == {"obfnet-mlp-b8-colored-mnist"}
    assert set(out["verdicts"]) == {"obfnet-mlp-b8-colored-mnist", "identity", "null", "random-weights"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {e["attack"] for e in saved["experiments"]} == set(attacks) and len(saved["experiments"]) == 4
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 5
    assert (tmp_path / "figures" / figure).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_audit_your_own_transform(cli, tmp_path):
    (tmp_path / "mytransform.py").write_text(
        textwrap.dedent("""
        import torch

        def blur(x):
            return torch.nn.functional.avg_pool2d(x, 4)
    """)
    )
    # run from the folder that holds the module, with nothing on PYTHONPATH: it is found
    r = cli(
        "audit",
        "--attack",
        "colornet",
        "--transform",
        "mytransform:blur",
        "--out",
        tmp_path / "o",
        "--json",
        "--epochs",
        "2",
        "--min-steps",
        "0",
        "--n-train",
        "500",
        "--n-test",
        "140",
        "--no-controls",
        cwd=tmp_path,
        script=True,
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)["records"][0]
    assert rec["subject"] == "blur" and rec["metrics"]["feature_accuracy"] > 0.5  # blurring keeps colour
    r = cli(
        "audit",
        "--attack",
        "colornet",
        "--transform",
        "mytransform:nothing",
        "--out",
        tmp_path / "o",
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "cannot import" in r.stderr


def test_an_audit_without_the_attribute_has_no_verdict(cli, tmp_path):
    """MNIST has no colour: an attribute attack cannot run, and the command says so."""
    r = cli("audit", "--attack", "colornet", "--transform", "identity", "--data", "mnist", "--out", tmp_path)
    assert r.returncode == 1 and "no verdict" in r.stderr and "attribute" in r.stderr


def test_cost_json(cli):
    r = cli("cost", "--input", "224x224x3", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["model"]: row for row in json.loads(r.stdout)["rows"]}
    assert abs(rows["ObfNet-MLP"]["params_vs_study"]) < 0.01
    assert abs(rows["ObfNet-CNN"]["params_vs_study"]) < 0.01
    assert abs(rows["LightNet"]["params_vs_study"]) < 0.02
    assert abs(rows["DenseNet"]["params_vs_study"]) < 0.02
    for m in ("ObfNet-MLP", "ObfNet-CNN", "LightNet"):
        assert abs(rows[m]["flops_vs_study"]) < 0.05, m
    r = cli("cost", "--input", "32x32x3")
    assert r.returncode == 0 and "ObfNet-MLP" in r.stdout
    r = cli("cost", "--input", "224x224")
    assert r.returncode == 2 and "224x224x3" in r.stderr


def test_every_setting_is_documented_once():
    """Help texts come from the settings dataclasses: every field has its docstring."""
    from dataclasses import fields

    from obfaudit._settings import field_docs
    from obfaudit.attacks import AuditConfig
    from obfaudit.audit import AuditJob
    from obfaudit.commands.cost import CostQuery
    from obfaudit.commands.data import DataQuery
    from obfaudit.commands.obfuscate import ObfuscateJob
    from obfaudit.commands.train import TrainJob
    from obfaudit.serve.jobs import EdgeJob, ExportJob, ServeJob, TapJob
    from obfaudit.study.context import RunSettings
    from obfaudit.train import TrainConfig

    for cls in (AuditConfig, AuditJob, CostQuery, DataQuery, ObfuscateJob, TrainJob, RunSettings,
                TrainConfig, EdgeJob, ExportJob, ServeJob, TapJob):  # fmt: skip
        undocumented = [f.name for f in fields(cls) if f.name not in field_docs(cls) and f.name != "train"]
        assert not undocumented, (cls.__name__, undocumented)


@pytest.mark.parametrize(
    "command",
    [["data", "stats"], ["train", "infnet"], ["train", "obfnet"], ["obfuscate"], ["audit"], ["reproduce"]],
)
def test_help_of_every_command(cli, command):
    r = cli(*command, "--help")
    assert r.returncode == 0 and "--seed" in r.stdout
    assert "(default: 0)" in r.stdout  # the default follows the docstring
