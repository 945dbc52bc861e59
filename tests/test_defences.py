"""Defences: each trains on tiny data, is recorded in the sidecar, and shows in the report."""

import json

import pytest
import torch

from obfaudit.data import load_colored_mnist
from obfaudit.defences import defence_names, get_defence
from obfaudit.defences.dcor import distance_correlation
from obfaudit.errors import ObfauditError
from obfaudit.experiments.steps import fit_obfnet
from obfaudit.models import create_model, load_model, read_sidecar, save_model
from obfaudit.train import TrainConfig
from tests.conftest import run_cli

TINY = TrainConfig(epochs=1, batch_size=32, patience=None, val_fraction=0)


@pytest.fixture(scope="module")
def tiny():
    train = load_colored_mnist("train").subset(slice(0, 96))
    test = load_colored_mnist("test").subset(slice(0, 32))
    torch.manual_seed(0)
    return train, test, create_model("infnet_cnn", input_shape=(3, 28, 28))


@pytest.mark.parametrize(
    "name", ["none", "noise", "dcor", "adversarial", "adversarial-ensemble", "invariance"]
)
def test_every_defence_trains_an_obfnet_and_leaves_the_infnet_alone(tiny, name):
    train, test, infnet = tiny
    before = {k: v.clone() for k, v in infnet.state_dict().items()}
    model, metrics = fit_obfnet("mlp", 8, infnet, train, test, TINY, defence=get_defence(name, 1.0))
    d = metrics["defence"]
    assert {k: d[k] for k in ("name", "strength", "strength_name")} == {
        "name": name,
        "strength": 1.0,
        "strength_name": get_defence(name).strength_name,
    }
    if name.startswith("adversarial"):  # what the co-trained adversaries read, beside a fresh attacker
        assert 0 <= d["in_training_acc"] <= 1 and 0 <= d["fresh_attacker"]["test_acc"] <= 1
    if name == "invariance":
        assert d["counterfactual"] == "builtin:recolour" and d["test_distance"] >= 0
    assert metrics["fit"]["epochs_run"] == 1 and 0 <= metrics["obfuscated_test_acc"] <= 1
    assert all(torch.equal(before[k], v) for k, v in infnet.state_dict().items())


def test_a_penalty_enters_the_training_loss(tiny):
    train, test, infnet = tiny
    losses = {
        lam: fit_obfnet("mlp", 8, infnet, train, test, TINY, defence=get_defence("dcor", lam))[1]["fit"][
            "train_loss"
        ]
        for lam in (0.0, 5.0)
    }
    assert losses[5.0] > losses[0.0] + 0.5  # 5 x dCor, and dCor of images and ObfNet outputs is large


def _row(defence, utility, fa, ci, verdict, n=64):
    from obfaudit.records import Experiment

    worst = Experiment(id="x", kind="attack", attack="colornet", metrics={"feature_accuracy": fa})
    return {
        "arch": "mlp",
        "bottleneck": n,
        "defence": defence,
        "strength": 1.0,
        "strength_name": "lambda",
        "label": defence,
        "utility": utility,
        "worst": worst,
        "fa": fa,
        "fa_ci": ci,
        "image": None,
        "verdict": verdict,
    }


def test_the_frontier_and_the_target_reading_follow_the_rows():
    from obfaudit.report.defences import _mark_pareto, target_reading

    rows = [
        _row("none", 0.90, 0.98, [0.97, 0.99], "compromised"),
        _row("dcor", 0.89, 0.25, [0.22, 0.28], "not compromised"),
        _row("noise", 0.80, 0.26, [0.23, 0.29], "not compromised"),  # dominated by dcor
        # its strongest attack's interval is below the line but another attack's is not
        _row("adversarial", 0.85, 0.20, [0.17, 0.23], "inconclusive"),
    ]
    _mark_pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, True]
    for r in rows:
        r["utility_drop"] = 0.90 - r["utility"]
    text = target_reading(rows, 0.3)
    assert text.startswith("1 defended ObfNet(s) keep utility within 3 points") and "dcor" in text
    rows[1]["utility"], rows[1]["utility_drop"] = 0.80, 0.10
    assert "No defence keeps every attack below the 30% line" in target_reading(rows, 0.3)
    from obfaudit.report.defences import passing_reading

    for r in rows:  # as defence_rows marks them
        r["passes"] = r["defence"] != "none" and r["verdict"] == "not compromised"
    text = passing_reading(rows, 0.3)
    assert (
        text.startswith("2 point(s) pass") and "dcor: utility 80.0%, 10.0 points below the undefended" in text
    )
    assert "adversarial" not in text  # inconclusive: one of its attacks' intervals reaches the line
    assert passing_reading(rows[:1], 0.3).startswith("No defended ObfNet passes")


def test_the_registry_lists_the_defences():
    assert set(defence_names()) >= {
        "none",
        "noise",
        "dcor",
        "adversarial",
        "adversarial-ensemble",
        "invariance",
    }
    with pytest.raises(ObfauditError, match="unknown defence 'bogus'"):
        get_defence("bogus")
    with pytest.raises(ObfauditError, match="finite number >= 0"):
        get_defence("noise", float("nan"))


def test_noise_is_sent_at_inference_too_and_survives_saving(tmp_path):
    model = create_model(
        "obfnet_mlp", input_shape=(3, 28, 28), bottleneck=8, **get_defence("noise", 2.0).model_kwargs()
    )
    x = torch.rand(4, 3, 28, 28)
    model.eval()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # a fresh draw per call, in eval mode
    loaded, info = load_model(save_model(model, tmp_path / "m"))
    assert info["kwargs"]["noise"] == 2.0 and loaded.noise == 2.0


def test_distance_correlation_is_one_for_the_same_data_and_zero_for_a_constant():
    x = torch.rand(64, 10)
    assert distance_correlation(x, 3 * x + 1).item() == pytest.approx(1.0, abs=1e-4)
    z = torch.zeros(64, 5, requires_grad=True)
    d = distance_correlation(x, z)
    d.backward()
    assert d.item() == pytest.approx(0.0, abs=1e-4) and torch.isfinite(z.grad).all()
    g = torch.Generator().manual_seed(0)
    u, v = torch.rand(500, 1, generator=g) - 0.5, torch.rand(500, 1, generator=g)
    assert distance_correlation(u, v).item() < 0.15  # independent
    assert distance_correlation(u, u**2).item() > 0.4  # dependent, with zero linear correlation


def _context(obfuscator=None, steps_per_epoch=4):
    from obfaudit.defences import TrainingContext

    return TrainingContext(
        obfuscator=obfuscator or torch.nn.Identity(),
        z_shape=(3, 28, 28),
        classes=7,
        device=torch.device("cpu"),
        seed=0,
        steps_per_epoch=steps_per_epoch,
    )


def test_the_adversarial_defence_trains_its_own_classifier_beside():
    d = get_defence("adversarial", 2.0)
    d.setup(_context())
    (adversary,) = d.team
    first = [p.clone() for p in adversary.net.parameters()]
    z = torch.rand(16, 3, 28, 28, requires_grad=True)
    loss = d.penalty(torch.rand(16, 3, 28, 28), z, torch.randint(0, 7, (16,)))
    loss.backward()
    assert any(not torch.equal(a, b) for a, b in zip(first, adversary.net.parameters(), strict=True))
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_the_ensemble_pays_for_its_strongest_and_restarts_its_fresh_adversary():
    d = get_defence("adversarial-ensemble", 1.0)
    d.setup(_context(steps_per_epoch=2))
    assert [a.name for a in d.team] == ["mlp", "cnn", "mlp-fresh"]
    fresh = d.team[-1]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):  # two epochs of two steps: the fresh adversary restarts once
        z = torch.rand(16, 3, 28, 28, generator=g, requires_grad=True)
        d.penalty(z.detach(), z, torch.randint(0, 7, (16,), generator=g)).backward()
    assert fresh.resets == 1 and d.team[0].resets == 0
    # re-initialised after its last step: exactly a new network drawn from its next seed
    torch.manual_seed(fresh.seed + 7919)
    expected = fresh.make()
    assert all(torch.equal(a, b) for a, b in zip(expected.parameters(), fresh.net.parameters(), strict=True))
    assert not torch.equal(next(d.team[0].net.parameters()), next(expected.parameters()))
    summary = d.summary()
    assert [a["last_epoch_train_acc"] is not None for a in summary["adversaries"]] == [True] * 3
    assert summary["in_training_acc"] == max(a["last_epoch_train_acc"] for a in summary["adversaries"])


def test_the_invariance_penalty_is_zero_for_a_transform_blind_to_colour_and_positive_for_the_identity():
    from obfaudit.defences.invariance import recolour

    x = load_colored_mnist("train").x[:32].float()
    colour = load_colored_mnist("train").labels["colour"][:32]
    assert torch.allclose(recolour(x, colour), x)  # exact: recolouring to its own colour changes nothing
    penalties = {}
    for name, transform in {
        "identity": torch.nn.Identity(),
        "grey": lambda v: v.amax(dim=1, keepdim=True),  # the digit without its colour
    }.items():
        d = get_defence("invariance", 3.0)
        d.setup(_context(transform))
        d.ramp = 1  # full weight from the first step
        penalties[name] = float(d.penalty(x, transform(x), colour))
    assert penalties["grey"] == 0.0 and penalties["identity"] > 0.01


def test_invariance_needs_a_counterfactual_beyond_colour(tiny, tmp_path, monkeypatch):
    with pytest.raises(ObfauditError, match="needs --counterfactual MODULE:CALLABLE for 'background'"):
        get_defence("invariance", 1.0, attribute="background")
    with pytest.raises(ObfauditError, match="--counterfactual is for the invariance defence, not dcor"):
        get_defence("dcor", 1.0, counterfactual="m:f")
    with pytest.raises(ObfauditError, match="--counterfactual nosuch:f: cannot import"):
        get_defence("invariance", 1.0, attribute="background", counterfactual="nosuch:f")
    (tmp_path / "cf_bad.py").write_text("def shrink(x, a):\n    return x[:, :1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    train, test, infnet = tiny
    d = get_defence("invariance", 1.0, attribute="colour", counterfactual="cf_bad:shrink")
    with pytest.raises(ObfauditError, match="must return images of the input's shape"):
        fit_obfnet("mlp", 8, infnet, train, test, TINY, defence=d)


def test_train_obfnet_records_the_defence_in_the_sidecar(tmp_path):
    r = run_cli("train", "infnet", "--arch", "mlp", "--epochs", "1", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    infnet = tmp_path / "infnet-mlp-colored-mnist"
    r = run_cli(
        "train", "obfnet", "--bottleneck", "8", "--infnet", infnet, "--defence", "adversarial",
        "--strength", "2", "--epochs", "1", "--out", tmp_path, "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    path = json.loads(r.stdout)["model"]
    assert path.endswith("obfnet-mlp-b8-adversarial-2-colored-mnist.safetensors")
    info = read_sidecar(path)
    assert {k: info["defence"][k] for k in ("name", "strength", "strength_name")} == {
        "name": "adversarial",
        "strength": 2.0,
        "strength_name": "lambda",
    }
    for bad, why in (
        (["--strength", "-1"], "finite number >= 0"),
        (["--defence", "bogus"], "invalid choice"),
    ):
        r = run_cli("train", "obfnet", "--bottleneck", "8", "--infnet", infnet, *bad, "--out", tmp_path)
        assert r.returncode == 2 and why in r.stderr
    r = run_cli(
        "train", "obfnet", "--bottleneck", "8", "--infnet", infnet, "--strength", "2", "--out", tmp_path
    )
    assert r.returncode == 1 and "--strength needs --defence" in r.stderr


@pytest.mark.slow
def test_a_defences_sweep_reports_its_frontier(tmp_path):
    from obfaudit.study.context import RunSettings
    from obfaudit.study.presets import get_preset
    from obfaudit.study.reproduce import reproduce

    preset = get_preset(
        "smoke",
        bottlenecks=(8,),
        mnist_bottlenecks=(),
        archs=("mlp",),
        tsne=(),
        slow_on=(),
        attacks=("recnet", "colornet", "linprobe"),
        defences=(("none", 0.0), ("noise", 4.0)),
    )
    reproduce(RunSettings(preset="smoke", out=tmp_path / "run"), preset=preset)
    out = tmp_path / "run"
    assert (out / "figures" / "fig_defences_frontier.png").read_bytes()[:4] == b"\x89PNG"
    info = read_sidecar(out / "models" / "obfnet-mlp-b8-noise-4-colored-mnist")
    assert info["defence"]["name"] == "noise" and info["kwargs"]["noise"] == 4.0
    page = (out / "report.html").read_text()
    section = page[page.index('id="defences"') : page.index('id="controls"')]
    assert "noise" in section and "sigma = 4" in section and "the worst case is" in section
    exps = json.loads((out / "results.json").read_text())["experiments"]
    audited = {(e["defence"], e["attack"]) for e in exps if e["kind"] == "attack"}
    assert {("noise-4", "colornet"), ("none", "linprobe")} <= audited


def test_auditing_a_defended_obfnet_shows_its_defence_and_with_an_infnet_its_utility(tiny, tmp_path):
    train, test, infnet = tiny
    model, metrics = fit_obfnet("mlp", 8, infnet, train, test, TINY, defence=get_defence("invariance", 5.0))
    obf = save_model(model, tmp_path / "obf", dataset="colored-mnist", seed=0, defence=metrics["defence"])
    inf = save_model(infnet, tmp_path / "inf", dataset="colored-mnist", seed=0)
    r = run_cli(
        "audit", "--transform", obf, "--infnet", inf, "--attack", "colornet", "--n-train", "300",
        "--n-test", "120", "--epochs", "1", "--min-steps", "0", "--no-controls", "--out", tmp_path / "a",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "defence: invariance (lambda = 5)" in r.stdout and "points lost" in r.stdout
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["defence"]["name"] == "invariance" and results["defence"]["strength"] == 5.0
    u = results["utility"]
    assert (
        u["task"] == "digit"
        and 0 <= u["obfuscated"]["ci"][0] <= u["obfuscated"]["accuracy"] <= u["obfuscated"]["ci"][1]
    )
    assert u["points_lost"] == pytest.approx(100 * (u["clean"]["accuracy"] - u["obfuscated"]["accuracy"]))
    assert {e["defence"] for e in results["experiments"]} == {"invariance-5"}
    assert "invariance-5" in (tmp_path / "a" / "results.csv").read_text()
    page = (tmp_path / "a" / "report.html").read_text()
    assert "<i>invariance</i> defence" in page and "points lost" in page


def test_invariance_on_shapes_for_the_background_with_a_users_counterfactual(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]  # examples/ is importable from the repository's root
    r = run_cli(
        "train", "infnet", "--data", "shapes", "--size", "16", "--epochs", "1", "--out", tmp_path, cwd=root
    )
    assert r.returncode == 0, r.stderr[-2000:]
    infnet = tmp_path / "infnet-cnn-shapes"
    assert read_sidecar(infnet)["input_shape"] == [3, 16, 16]
    base = ["train", "obfnet", "--infnet", infnet, "--bottleneck", "8", "--epochs", "1", "--out", tmp_path]
    r = run_cli(*base, "--attribute", "background", "--defence", "invariance", "--strength", "10", cwd=root)
    assert r.returncode == 1 and "needs --counterfactual MODULE:CALLABLE for 'background'" in r.stderr
    r = run_cli(*base, "--attribute", "tone", "--defence", "invariance", "--strength", "10", cwd=root)
    assert r.returncode == 1 and "--attribute tone: shapes has hue, background, random" in r.stderr
    r = run_cli(
        *base, "--attribute", "background", "--defence", "invariance", "--strength", "10",
        "--counterfactual", "examples.counterfactuals:shapes_background", "--json", cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    d = read_sidecar(json.loads(r.stdout)["model"])["defence"]
    assert (
        d["attribute"] == "background" and d["counterfactual"] == "examples.counterfactuals:shapes_background"
    )
    assert d["test_distance"] >= 0
