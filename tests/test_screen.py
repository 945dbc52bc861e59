"""The screening audit (--budget quick): the cheap attacks, briefly, that can find a leak but never
rule one out."""

import json
from dataclasses import replace

import pytest
import torch

from obfaudit.attacks import attack_class, attack_names
from obfaudit.attacks.base import AttackSettings
from obfaudit.attacks.prepare import BUDGETS
from obfaudit.attacks.reconstruct import RecNet, low_resolution
from obfaudit.audit.job import BUDGET_NAMES, AuditJob
from obfaudit.audit.resolve import SCREEN_LEAVES_OUT
from obfaudit.errors import ObfauditError
from obfaudit.models import create_model
from obfaudit.models.attack_nets import describe
from obfaudit.train_config import TrainConfig
from tests.conftest import run_cli

SMALL = ["--n-train", "300", "--n-test", "140", "--n-proxy", "700"]


def test_the_budgets_are_the_parsers_choices_and_fill_what_is_not_given(tmp_path):
    assert BUDGET_NAMES == tuple(BUDGETS)
    standard = AuditJob(transform="identity", out=tmp_path).spent
    assert (standard.epochs, standard.min_steps, standard.n_proxy, standard.n_tsne) == (
        15,
        1000,
        30_000,
        1000,
    )
    job = AuditJob(transform="identity", out=tmp_path, budget="quick", epochs=9)
    quick = job.spent
    assert (quick.epochs, quick.min_steps, quick.n_proxy) == (9, 250, 5_000)  # what is given stays
    assert job.settings()["budget"] == "quick" and job.settings()["min_steps"] == 250
    # another budget by replace() brings its own numbers, not the first one's
    again = replace(job, budget="standard").spent
    assert (again.epochs, again.min_steps, again.n_proxy, again.screen) == (9, 1000, 30_000, False)
    with pytest.raises(ObfauditError, match="--budget lavish: use one of standard, quick"):
        AuditJob(transform="identity", out=tmp_path, budget="lavish")
    r = run_cli("audit", "--transform", "identity", "--budget", "lavish", "--out", tmp_path / "o")
    assert r.returncode == 2 and "invalid choice: 'lavish'" in r.stderr


def test_a_screen_runs_no_attack_that_optimises_every_image():
    screening = {a for a in attack_names() if attack_class(a).screening}
    assert {"inversion", "inversion-decoder"}.isdisjoint(screening)
    assert {"colornet", "linprobe", "knnprobe", "decoder", "recnet", "tsne", "noisynet"} <= screening


def test_low_resolution_keeps_the_aspect_and_small_images():
    x = torch.rand(2, 3, 64, 32)
    assert low_resolution(x, 16).shape == (2, 3, 16, 8)
    assert low_resolution(x, None) is x and low_resolution(x, 64) is x
    flat = torch.rand(2, 10)
    assert low_resolution(flat, 4) is flat
    # area averaging: the mean of each block
    block = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert low_resolution(block, 2)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]


def test_a_low_resolution_decoder_answers_at_the_images_size():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 28, 28)
    settings = AttackSettings(train=TrainConfig(epochs=1, patience=None, val_fraction=0.0), recon_side=14)
    attack = RecNet(settings)
    fit = attack._train(x, x, settings.train, "t")
    assert fit["resolution"] == [14, 14] and fit["upsampled_to"] == [28, 28]
    assert fit["network"]["params"] < describe(create_model("recnet", input_shape=(3, 28, 28)))["params"]
    out = attack.infer(x[:5])
    assert out.shape == (5, 3, 28, 28) and torch.isfinite(out).all()


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    """A screen of the null transform (which sends nothing), with the identity control beside it."""
    tmp = tmp_path_factory.mktemp("screen")
    r = run_cli(
        "audit", "--transform", "null", "--budget", "quick", *SMALL, "--cache", tmp / "cache",
        "--out", tmp / "null", subprocess_=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r, json.loads((tmp / "null" / "results.json").read_text()), tmp


def test_a_screen_never_says_not_compromised(screened):
    r, results, tmp = screened
    assert results["settings"]["budget"] == "quick"
    mine = [e for e in results["experiments"] if e["subject"] == "null"]
    assert mine and all(e["verdict"] != "not compromised" for e in mine)
    assert results["verdict"] == "inconclusive"
    assert all(p["verdict"] != "not compromised" for p in results["parties"])
    screen = results["screen"]
    found_nothing = screen["not_compromised_by_the_attacks"]  # the null sends nothing to find
    assert found_nothing and all(e["verdict"] == "inconclusive" for e in mine if e["attack"] in found_nothing)
    assert any("inversion" in a for a in screen["standard_adds"])
    # the controls keep their own verdicts: the identity control is the screen's calibration
    assert results["verdicts"]["identity"] == "compromised"
    assert "a screen (--budget quick): it can find a leak, not rule one out" in r.stdout
    page = (tmp / "null" / "report.html").read_text()
    assert "This is a screen" in page and "never <i>not compromised</i>" in page


def test_a_screen_leaves_out_the_slow_attacks_unless_named(screened):
    _, results, _ = screened
    ran = {e["attack"] for e in results["experiments"]}
    assert all(attack_class(a).screening for a in ran)
    assert results["skipped"]["null"]["inversion"] == SCREEN_LEAVES_OUT
    decoder = next(e for e in results["experiments"] if e["subject"] == "null" and e["attack"] == "decoder")
    assert decoder["fit"]["resolution"] == [16, 16] and decoder["fit"]["upsampled_to"] == [28, 28]


def test_a_screen_finds_a_leak(screened):
    _, _, tmp = screened
    r = run_cli(
        "audit", "--transform", "identity", "--budget", "quick", *SMALL, "--cache", tmp / "cache",
        "--attack", "colornet", "linprobe", "--no-controls",
        "--out", tmp / "identity", "--fail-on", "compromised", subprocess_=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 3, r.stderr[-3000:]  # the gate fails: the screen found the leak
    results = json.loads((tmp / "identity" / "results.json").read_text())
    assert results["verdict"] == "compromised"
    assert results["screen"]["not_compromised_by_the_attacks"] == []
