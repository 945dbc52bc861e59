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


def test_two_seeds_of_one_transform_are_the_same_and_the_null_leaks_less_than_the_identity(audits):
    r = run_cli("compare", audits / "id0", audits / "id1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["rows"]
    assert {x["says"] for x in rows} == {"same"} and {x["metric"] for x in rows} == {"feature_accuracy"}
    assert {x["method"] for x in rows} == {"unpaired"}  # another seed draws another split

    r = run_cli("compare", audits / "id0", audits / "null", "--embed")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "B leaks less on 2, the same on 0, more on 0 of 2 scores" in r.stdout
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
