"""How much the attacker must know: the known-pairs adversary and the --known-pairs sweep."""

import json

import pytest
import torch

from obfaudit.attacks.auditor import known_pairs
from obfaudit.audit.known_pairs import known_pairs_list
from obfaudit.data import load_colored_mnist
from obfaudit.errors import ObfauditError
from tests.conftest import run_cli

SWEEP = [
    "--attack", "colornet", "--n-train", "1000", "--n-test", "200", "--epochs", "10", "--min-steps", "200",
    "--no-controls", "--known-pairs", "0,10,100,1000",
]  # fmt: skip


def _rows(out):
    return json.loads((out / "knowledge.json").read_text())["rows"]


@pytest.mark.slow
def test_the_curve_rises_within_its_intervals_on_the_identity_and_stays_at_chance_on_the_null(tmp_path):
    r = run_cli("audit", "--transform", "identity", *SWEEP, "--out", tmp_path / "id")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _rows(tmp_path / "id")
    assert [x["k"] for x in rows] == [0, 10, 100, 1000, 1000]  # k = 0, the sweep, the server's end point
    pairs = [x for x in rows if x["who"].startswith("adversary with")]
    for before, after in zip(pairs, pairs[1:], strict=False):  # more pairs never read less, beyond noise
        assert after["fa_ci"][1] >= before["fa_ci"][0]
    assert pairs[-1]["verdict"] == "compromised" and rows[-1]["fa_attack"] == "colornet"
    assert "attacker knowledge: The smallest k" in r.stdout
    assert (tmp_path / "id" / "known-pairs-10" / "results.json").exists()
    page = (tmp_path / "id" / "report.html").read_text()
    assert "How much the attacker must know" in page and "data:image/png;base64" in page

    r = run_cli("audit", "--transform", "null", *SWEEP, "--out", tmp_path / "null")
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "null" / "results.json").read_text())
    majority, line = results["baselines"]["majority_class"], results["baselines"]["threshold"]
    for x in _rows(tmp_path / "null"):
        if x.get("fa") is not None:
            assert x["fa"] <= majority + 0.05 and x["fa_ci"][1] < line, x
    assert "No k tried makes the adversary's worst case compromised" in r.stdout


def test_the_adversary_with_pairs_keeps_what_it_held_without_them():
    from types import SimpleNamespace

    from obfaudit.audit.known_pairs import knowledge_rows
    from obfaudit.records import AttackRecord

    def rec(attack, party, fa):
        metrics = {"feature_accuracy": fa, "feature_accuracy_ci": [fa - 0.02, fa + 0.02]}
        return AttackRecord(subject="s", attack=attack, party=party, output="attribute", metrics=metrics,
                            verdict="compromised" if fa > 0.3 else "not compromised")  # fmt: skip

    main = SimpleNamespace(records=[rec("noisynet", "adversary", 0.9), rec("colornet", "server", 0.97)])
    ten = SimpleNamespace(
        records=[rec("knownpairs", "adversary", 0.14)]
    )  # ten stolen pairs alone read little
    rows = knowledge_rows(main, {10: ten}, 4000)
    assert rows[0]["fa"] == rows[1]["fa"] == 0.9 and rows[1]["fa_attack"] == "noisynet"
    assert rows[1]["pairs_alone"]["fa"] == 0.14 and rows[2]["fa_attack"] == "colornet"


def test_known_pairs_come_from_the_training_split_and_are_refused_beyond_it():
    train = load_colored_mnist("train").subset(slice(0, 50))
    held = known_pairs(train, 10, seed=0)
    assert len(held) == 10 and held.split == "train"
    rows = {tuple(v.flatten()[:20].tolist()) for v in train.x}
    assert all(tuple(v.flatten()[:20].tolist()) in rows for v in held.x)
    assert torch.equal(known_pairs(train, 10, seed=0).x, held.x) and known_pairs(train, 0, seed=0) is None
    with pytest.raises(ObfauditError, match="only 50 images"):
        known_pairs(train, 51, seed=0)


def test_a_bad_list_is_one_line(tmp_path):
    assert known_pairs_list(("100,0,10", "10")) == (0, 10, 100)
    for bad, why in (("ten", "give whole numbers"), ("-3", "0 or more"), (",", "at least one")):
        with pytest.raises(ObfauditError, match=why):
            known_pairs_list(bad)
    r = run_cli("audit", "--transform", "identity", "--known-pairs", "1,x", "--out", tmp_path / "o")
    assert r.returncode == 1 and "--known-pairs 'x': give whole numbers" in r.stderr


def test_the_known_pairs_attacks_say_why_they_did_not_run_without_pairs(tmp_path):
    r = run_cli(
        "audit", "--transform", "identity", "--attack", "colornet", "knownpairs", "--n-train", "200",
        "--n-test", "100", "--epochs", "1", "--min-steps", "0", "--no-controls", "--out", tmp_path / "o",
        "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    skipped = json.loads(r.stdout)["skipped"]
    assert "give --known-pairs K" in json.dumps(skipped)
