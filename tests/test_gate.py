"""The privacy gate: --fail-on exits 3 after writing everything, --junit writes one case per party."""

import json

import pytest
from junitparser import Failure, JUnitXml

from obfaudit.gate import EXIT_GATE, failing, party_table, reaches
from obfaudit.records import PartyVerdict
from tests.conftest import run_cli

QUICK = [
    "--attack", "colornet", "noisynet", "--n-train", "300", "--n-test", "140", "--n-proxy", "700",
    "--epochs", "3", "--min-steps", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gate-cache")


def _audit(tmp_path, cache, transform, *extra):
    junit = tmp_path / f"{transform}.xml"
    r = run_cli(
        "audit", "--transform", transform, *QUICK, "--cache", cache, "--out", tmp_path / transform,
        "--junit", junit, *extra, subprocess_=True,
    )  # fmt: skip
    return r, junit


def test_the_gate_fails_the_identity_and_passes_the_null(tmp_path, cache):
    r, junit = _audit(tmp_path, cache, "identity", "--fail-on", "compromised")
    assert r.returncode == EXIT_GATE, r.stderr[-2000:]
    assert "gate (--fail-on compromised): FAILED, server compromised" in r.stdout
    assert (tmp_path / "identity" / "report.html").exists()  # everything written before the exit
    suites = list(JUnitXml.fromfile(str(junit)))
    (suite,) = suites
    cases = {c.name.split()[0]: c for c in suite}
    assert set(cases) == {"server", "adversary"}  # one case per party that attacked
    assert isinstance(cases["server"].result[0], Failure) and suite.failures >= 1
    results = json.loads((tmp_path / "identity" / "results.json").read_text())
    assert {p["party"] for p in results["parties"]} == {"server", "adversary"}

    r, junit = _audit(tmp_path, cache, "null", "--fail-on", "compromised")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "gate (--fail-on compromised): passed" in r.stdout
    (suite,) = list(JUnitXml.fromfile(str(junit)))
    assert len(list(suite)) == 2 and suite.failures == 0


def test_the_summary_leads_with_an_aligned_party_table():
    parties = [
        PartyVerdict("server", "compromised", "colornet", "F_a 99.0% [98, 100]"),
        PartyVerdict("adversary", None, "noisynet", "F_a 20.0% [15, 25]"),
    ]
    header, *rows = party_table(parties)
    assert header.index("verdict") == rows[0].index("compromised") == rows[1].index("no verdict")
    assert header.index("strongest attack") == rows[0].index("colornet") == rows[1].index("noisynet")


def test_levels_are_ordered():
    assert reaches("compromised", "inconclusive") and reaches("inconclusive", "inconclusive")
    assert not reaches("not compromised", "inconclusive") and not reaches("inconclusive", "compromised")
    assert reaches(None, "inconclusive")  # no verdict is not a pass
    parties = [PartyVerdict("server", "inconclusive")]
    assert failing(parties, None) == [] and failing(parties, "inconclusive") == parties


def test_a_bad_level_is_refused_before_work(tmp_path):
    r = run_cli("audit", "--transform", "identity", "--fail-on", "leaky", "--out", tmp_path / "o")
    assert r.returncode == 2 and "--fail-on: invalid choice: 'leaky'" in r.stderr
    # a sweep of cuts is many audits: one gate or JUnit file for all of them would pass or overwrite silently
    r = run_cli(
        "audit",
        "--transform",
        "m:f",
        "--split",
        "layer1",
        "--fail-on",
        "compromised",
        "--out",
        tmp_path / "s",
    )
    assert r.returncode == 1 and "gate one audit, not a --split sweep" in r.stderr
