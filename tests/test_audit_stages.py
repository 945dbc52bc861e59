"""The audit as stages: it resumes, shares its controls with other audits, and is the Python API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from obfaudit.audit import AuditJob, AuditReport, audit
from obfaudit.threat import Party, Verdict
from tests.conftest import SUBPROCESS_ENV

TINY = {"n_train": 300, "n_test": 140, "epochs": 2, "min_steps": 0, "n_proxy": 700}


def blur(x):
    return torch.nn.functional.avg_pool2d(x, 4)


def darken(x):
    return 0.5 * x


def test_the_python_api_gives_typed_results_progress_and_reports(tmp_path):
    seen = []
    report = audit(
        AuditJob(
            transform=blur, attacks=("colornet", "recnet"), out=tmp_path / "a", cache=tmp_path / "c", **TINY
        ),
        on_progress=seen.append,
    )
    assert isinstance(report, AuditReport) and report.subject == "blur"
    assert report.verdict is Verdict.COMPROMISED  # blurring keeps the colour
    colornet = next(r for r in report.records if r.attack == "colornet")
    assert colornet.party is Party.SERVER and colornet.metrics.lower() > colornet.metrics.threshold
    # pooling sends another shape: the same-shape control checks the attacks on a 3x7x7 tensor too
    assert set(report.verdicts) == {"blur", "identity", "null", "same-shape"}
    assert report.verdicts["identity"] is Verdict.COMPROMISED
    assert report.verdicts["null"] is Verdict.NOT_COMPROMISED
    # one event per stage: the judge (recnet reads reconstructions with it) and 2 attacks x 4 subjects
    assert [p.done for p in seen] == list(range(1, 10)) and seen[-1].total == 9
    assert (tmp_path / "a" / "report.html").exists() and (
        tmp_path / "a" / "figures" / "reconstructions.png"
    ).exists()
    page = report.write_report(tmp_path / "elsewhere")
    assert page.read_text() == (tmp_path / "a" / "report.html").read_text()
    saved = json.loads((tmp_path / "elsewhere" / "results.json").read_text())
    assert saved["settings"]["transform"].endswith(":blur") and saved["verdict"] == "compromised"
    # the document is typed, and reads back from results.json as it was written
    from obfaudit.records import AuditDocument, Kind, PartyVerdict

    again = AuditDocument.read(tmp_path / "elsewhere" / "results.json")
    assert again.to_dict() == saved == report.document.to_dict()
    assert again.verdict is Verdict.COMPROMISED and all(isinstance(p, PartyVerdict) for p in again.parties)
    assert {e.kind for e in again.experiments} == {Kind.ATTACK, Kind.CONTROL}
    assert again.controls["same-shape"]["shape"] == [3, 7, 7]  # 28x28 pooled 4x4
    with pytest.raises(ValueError, match="not an audit's results"):
        AuditDocument.from_dict({"obfaudit_results": 1})


def test_a_second_audit_on_the_same_data_reuses_the_controls_and_the_judge(tmp_path):
    cache = tmp_path / "cache"
    first, second = [], []
    job = AuditJob(transform=blur, attacks=("colornet", "recnet"), out=tmp_path / "a", cache=cache, **TINY)
    audit(job, on_progress=first.append)
    other = AuditJob(
        transform=darken, attacks=("colornet", "recnet"), out=tmp_path / "b", cache=cache, **TINY
    )
    report = audit(other, on_progress=second.append)
    kept = [p.message for p in second if "kept from an earlier run" in p.message]
    assert len(kept) == 5, [p.message for p in second]  # the judge and identity, null x 2 attacks
    assert not any("darken" in m for m in kept)
    # the judge, the two attacks on blur and on each control (blur pools: a same-shape control too)
    assert sum("done in" in p.message for p in first) == 9
    # the reused controls are the same records (darken keeps the image's shape: no same-shape control)
    a = json.loads((tmp_path / "a" / "results.json").read_text())["experiments"]
    b = json.loads((tmp_path / "b" / "results.json").read_text())["experiments"]
    controls = lambda exps: {  # noqa: E731
        e["id"]: e["metrics"] for e in exps if e["kind"] == "control" and e["subject"] != "same-shape"
    }
    assert controls(a) == controls(b) and len(controls(a)) == 4
    assert {e["subject"] for e in b if e["kind"] == "control"} == {"identity", "null"}
    assert report.subject == "darken"
    # another seed is another audit: nothing is reused
    third = []
    audit(AuditJob(transform=darken, attacks=("colornet",), out=tmp_path / "c", cache=cache, seed=1, **TINY),
          on_progress=third.append)  # fmt: skip
    assert not any("kept" in p.message for p in third)


def test_an_audit_rerun_into_its_folder_keeps_every_finished_attack(tmp_path):
    job = AuditJob(transform="identity", attacks=("colornet",), no_controls=True, out=tmp_path / "a",
                   cache=tmp_path / "c", **TINY)  # fmt: skip
    audit(job)
    record = (tmp_path / "a" / "stages" / "attack-colornet.json").read_bytes()
    events = []
    audit(job, on_progress=events.append)
    assert [p.message.endswith("kept from an earlier run") for p in events] == [True]
    assert (tmp_path / "a" / "stages" / "attack-colornet.json").read_bytes() == record


@pytest.mark.slow
def test_an_audit_killed_halfway_resumes_without_retraining_what_it_finished(tmp_path):
    """A real process, killed with SIGKILL once its first attacks are stored; the rerun keeps them."""
    out = tmp_path / "killed"
    argv = [
        sys.executable, "-m", "obfaudit.cli", "audit", "--transform", "identity",
        "--attack", "colornet", "recnet", "pathnet", "linprobe", "--n-train", "300", "--n-test", "140",
        "--n-proxy", "1400", "--epochs", "2", "--min-steps", "0", "--no-controls",
        "--cache", str(tmp_path / "cache"),
        "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, **SUBPROCESS_ENV}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    stages = out / "stages"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(stages.glob("attack-*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.read_bytes() for p in stages.glob("attack-*.json")}
    assert 2 <= len(finished) < 4, sorted(finished)
    assert not (out / "report.html").exists()
    r = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for name, blob in finished.items():  # finished attacks are kept, not retrained
        assert (stages / name).read_bytes() == blob
    assert {x["attack"] for x in json.loads(r.stdout)["records"]} == {
        "colornet",
        "recnet",
        "pathnet",
        "linprobe",
    }
    assert (out / "report.html").exists()


def test_every_output_is_checked_before_any_work(tmp_path, monkeypatch, cli):
    """A place that cannot be reached or written is one line, whichever command writes there."""
    (tmp_path / "a-file").write_text("x")
    for argv in (
        ["data", "show", "mnist", "--out", tmp_path / "a-file" / "x.png"],
        ["data", "export", "mnist", "--out", tmp_path / "a-file"],
        ["audit", "--transform", "identity", "--out", tmp_path / "o", "--cache", tmp_path / "a-file"],
        ["obfuscate", "--obfnet", tmp_path / "none", "--out", tmp_path / "a-file"],
    ):
        r = cli(*argv)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "a-file" in r.stderr, (argv, r.stderr)
    # a folder that cannot be searched (what a non-root user meets in a read-only place) is one line too
    from obfaudit.commands import OutputPath, check_outputs
    from obfaudit.errors import ObfauditError

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "exists", refuse)
    with pytest.raises(ObfauditError, match="cannot be reached"):
        check_outputs([OutputPath(tmp_path / "locked" / "x.png", "--out", is_dir=False)])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_one_line(tmp_path, cli):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = cli("data", "show", "mnist", "--out", locked / "x.png")
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot be written" in r.stderr
    finally:
        locked.chmod(0o755)


def test_a_renamed_subject_a_repeated_attack_and_report_on_an_audit_folder(tmp_path, cli):
    """The same transform under another name into the same folder is audited again under that name;
    an attack named twice runs once; `report` refuses an audit's folder instead of overwriting it."""
    common = dict(
        attacks=("colornet", "colornet"), no_controls=True, out=tmp_path / "a", cache=tmp_path / "c"
    )
    first = audit(AuditJob(transform=blur, name="first", **common, **TINY))
    assert [r.attack for r in first.records] == ["colornet"]
    second = audit(AuditJob(transform=blur, name="second", **common, **TINY))
    assert second.subject == "second" and [r.subject for r in second.records] == ["second"]
    assert second.records[0].metrics == first.records[0].metrics  # the same transform, scored alike
    r = cli("report", tmp_path / "a")
    assert r.returncode == 1 and "obfaudit audit" in r.stderr and r.stderr.count("\n") == 1
    assert json.loads((tmp_path / "a" / "results.json").read_text())["subject"] == "second"


@torch.no_grad()
def detached(x):
    return torch.nn.functional.avg_pool2d(x, 2)


def one_number(x):
    return x.mean(dim=(1, 2, 3))


def test_gradients_are_detected_truthfully_and_what_did_not_run_is_said(tmp_path):
    """A transform under no_grad is not offered to gradient attacks; every registered attack left out
    is listed with its reason; the judge's accuracy on clean images is recorded."""
    from obfaudit.attacks.auditor import differentiable
    from obfaudit.transforms import CheckedTransform, NullTransform

    x = torch.rand(2, 3, 8, 8)
    assert not differentiable(CheckedTransform(detached, "detached"), x)
    assert not differentiable(CheckedTransform(lambda x: x.detach() * 2, "detach"), x)
    assert differentiable(CheckedTransform(NullTransform(), "null"), x)  # zeros, with a zero gradient
    assert differentiable(CheckedTransform(blur, "blur"), x)
    job = AuditJob(transform=detached, attacks=("inversion", "recnet"), no_controls=True, out=tmp_path / "a",
                   cache=tmp_path / "c", **TINY)  # fmt: skip
    report = audit(job)
    assert [r.attack for r in report.records] == ["recnet"]
    assert "gradients" in report.skipped["detached"]["inversion"]
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    assert 0.5 < doc["judge"]["clean_test_acc"] <= 1 and doc["judge"]["attribute"] == "colour"
    assert "inversion on detached" in (tmp_path / "a" / "report.html").read_text()
    # the attacks a default audit leaves out are named too (those that need gradients or a proxy folder)
    left = audit(AuditJob(transform=detached, no_controls=True, out=tmp_path / "b", cache=tmp_path / "c",
                          **{**TINY, "epochs": 1, "n_proxy": 300}))  # fmt: skip
    assert {"inversion", "inversion-decoder", "proxynet"} <= set(left.skipped["detached"])
    assert "inversion" not in {r.attack for r in left.records}


def test_a_transform_that_sends_one_number_per_image(tmp_path):
    report = audit(AuditJob(transform=one_number, attacks=("recnet", "colornet"), no_controls=True,
                            out=tmp_path / "a", cache=tmp_path / "c", **TINY))  # fmt: skip
    assert {r.attack for r in report.records} == {"recnet", "colornet"}


def test_the_same_shape_control_runs_only_where_an_attack_learns_from_what_is_sent(tmp_path):
    """The reference inverse uses the transform itself: the identity calibrates it, and no same-shape
    control is made (it would run nothing)."""
    job = AuditJob(transform=blur, attacks=("reference",), out=tmp_path / "a", cache=tmp_path / "c", **TINY)
    report = audit(job)
    assert set(report.verdicts) == {"blur", "identity", "null"} and not report.document.controls
    assert report.calibration["reference"].control == "identity"


def test_an_older_audits_results_still_read():
    """A results.json from before calibration and parties were written still loads (compare reads it)."""
    from obfaudit.records import AuditDocument

    old = {"obfaudit_audit": 1, "subject": "t", "dataset": {"name": "shapes"},
           "verdicts": {"t": "compromised"}, "verdict": "compromised",
           "experiments": [{"id": "a", "kind": "attack", "subject": "t"}]}  # fmt: skip
    doc = AuditDocument.from_dict(old)
    assert doc.verdict is Verdict.COMPROMISED and doc.calibration == {} and doc.parties == []
    keys = list(AuditDocument.from_dict({**old, "utility": {}, "defence": {"name": "noise"}}).to_dict())
    assert keys.index("experiments") < keys.index("defence") < keys.index("utility") < keys.index("parties")
