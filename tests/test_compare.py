"""obfaudit compare: B against A per subject, party and attack, with the interval of the difference."""

import json

import numpy as np
import pytest

from obfaudit.attacks.uncertainty import pack_correct, unpack_correct
from obfaudit.commands.compare import difference, says
from tests.conftest import run_cli

QUICK = ["--attack", "colornet", "recnet", "--n-train", "300", "--n-test", "140", "--epochs", "3",
         "--min-steps", "0", "--no-controls"]  # fmt: skip


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    for name, transform, seed in (("id0", "identity", 0), ("id1", "identity", 1), ("null", "null", 0)):
        r = run_cli("audit", "--transform", transform, "--seed", str(seed), *QUICK, "--out", base / name)
        assert r.returncode == 0, r.stderr[-2000:]
    return base


def test_two_seeds_of_one_transform_are_close_and_the_null_leaks_less_than_the_identity(audits):
    r = run_cli("compare", audits / "id0", audits / "id1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["rows"]
    # an image attack is compared on what it reads of the attribute and on how well it rebuilds the image
    assert {(x["attack"], x["metric"]) for x in rows} == {
        ("colornet", "feature_accuracy"), ("recnet", "feature_accuracy"), ("recnet", "ssim")
    }  # fmt: skip
    # two seeds of one transform are close (their intervals cover the test images, not training's randomness)
    assert all(abs(x["difference"]) < 0.15 for x in rows), rows
    assert {x["method"] for x in rows} == {"unpaired"}  # another seed draws another split

    r = run_cli("compare", audits / "id0", audits / "null", "--embed")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "B leaks less on 3, the same on 0, more on 0 of 3 scores" in r.stdout
    assert "different budgets" not in r.stdout
    rows = json.loads(run_cli("compare", audits / "id0", audits / "null", "--json").stdout)["rows"]
    assert {(x["attack"], x["metric"], x["says"]) for x in rows} >= {("recnet", "ssim", "less")}
    assert "identity -> null  server  colornet" in r.stdout and "paired" in r.stdout
    page = (audits / "null" / "report.html").read_text()
    assert page.count('id="compare"') == 1
    run_cli("compare", audits / "id0", audits / "null", "--embed")  # again: replaced, not added
    assert (audits / "null" / "report.html").read_text().count('id="compare"') == 1


def test_a_paired_interval_is_narrower_than_an_unpaired_one_on_the_same_images():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.6
    b = a.copy()
    b[rng.choice(500, 25, replace=False)] ^= True  # B differs from A on 5% of the images
    ma = {"feature_accuracy": a.mean(), "per_image": {"feature_accuracy": pack_correct(a), "n": 500}}
    mb = {"feature_accuracy": b.mean(), "per_image": {"feature_accuracy": pack_correct(b), "n": 500}}
    assert np.array_equal(unpack_correct(pack_correct(a), 500), a.astype(float))
    _, paired, how = difference(ma, mb, "feature_accuracy", paired=True)
    _, unpaired, how2 = difference(ma, mb, "feature_accuracy", paired=False)
    assert (how, how2) == ("paired", "unpaired")
    assert paired[1] - paired[0] < 0.5 * (unpaired[1] - unpaired[0])
    old = {"feature_accuracy": 0.5, "feature_accuracy_ci": [0.45, 0.55]}
    new = {"feature_accuracy": 0.9, "feature_accuracy_ci": [0.87, 0.93]}
    d, ci, how = difference(old, new, "feature_accuracy", paired=True)
    assert how == "approximate" and says(ci) == "more" and ci[0] < d < ci[1]
    d, ci, how = difference({"feature_accuracy": 0.5}, new, "feature_accuracy", paired=True)
    assert ci is None and says(ci) == "unknown"  # no interval: no claim either way


def test_unreadable_or_foreign_runs_are_one_line(tmp_path, audits):
    r = run_cli("compare", tmp_path / "nowhere", audits / "id0")
    assert r.returncode == 1 and "no results.json" in r.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    r = run_cli("compare", tmp_path / "bad", audits / "id0")
    assert r.returncode == 1 and "not readable JSON" in r.stderr
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    r = run_cli("compare", tmp_path / "other.json", audits / "id0")
    assert r.returncode == 1 and "not the results of an obfaudit audit" in r.stderr


def _copy_run(src, dst, **settings):
    """A copy of an audit's results.json with some settings changed (no training: compare reads only this)."""
    doc = json.loads((src / "results.json").read_text())
    doc["settings"].update(settings)
    dst.mkdir(parents=True)
    (dst / "results.json").write_text(json.dumps(doc))
    return doc


def test_controls_are_a_table_apart_and_different_budgets_are_warned_of(tmp_path, audits):
    doc = _copy_run(audits / "id0", tmp_path / "a")
    control = dict(next(e for e in doc["experiments"] if e["attack"] == "colornet"), kind="control")
    control["subject"] = "identity-control"
    doc["experiments"].append(control)
    (tmp_path / "a" / "results.json").write_text(json.dumps(doc))
    b = json.loads((tmp_path / "a" / "results.json").read_text())
    b["settings"]["epochs"] = 99
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps(b))
    r = run_cli("compare", tmp_path / "a", tmp_path / "b", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["budgets"] == ["epochs: 3 / 99"]
    controls = [x for x in out["rows"] if x["control"]]
    assert [(x["subject"], x["attack"]) for x in controls] == [("identity-control", "colornet")]
    r = run_cli("compare", tmp_path / "a", tmp_path / "b")
    lines = r.stdout.splitlines()
    assert "warning: the runs used different budgets (epochs: 3 / 99)" in lines[1]
    assert "of 3 scores" in lines[0]  # the control's row is not counted with the subject's
    apart = lines.index("the controls (what the attacks can read at all; not counted above):")
    assert any(line.startswith("identity-control") for line in lines[apart:])
    assert not any(line.startswith("identity-control") for line in lines[:apart])


def test_two_split_sweeps_are_compared_cut_by_cut(tmp_path, audits):
    for sweep, cuts, run in (("a", ("layer1", "layer2"), "id0"), ("b", ("layer2", "layer3"), "null")):
        for node in cuts:
            _copy_run(audits / run, tmp_path / sweep / node)
        split = {"obfaudit_split": 1, "model": "m", "cuts": [{"node": n} for n in cuts]}
        (tmp_path / sweep / "split.json").write_text(json.dumps(split))
    r = run_cli("compare", tmp_path / "a", tmp_path / "b", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {x["subject"] for x in out["rows"]} == {"layer2"}  # the one cut both swept
    assert {x["says"] for x in out["rows"]} == {"less"}  # the null's cut against the identity's
    assert out["only_in_a"] == ["cut layer1"] and out["only_in_b"] == ["cut layer3"]
    r = run_cli("compare", tmp_path / "a", audits / "id0")
    assert r.returncode == 1 and "is a split sweep and the other run is not" in r.stderr
