"""Attack networks sized by what they attack, training that follows the data, and calibration by the
identity control."""

from __future__ import annotations

import json

import pytest
import torch

from obfaudit.attacks.calibration import calibrate, calibrated_verdict
from obfaudit.models.attack_nets import attack_network, attack_training, describe, uses_conv
from obfaudit.records import AttackRecord
from obfaudit.train import TrainConfig, fit
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "shape", [(3, 64, 64), (64, 16, 16), (512, 2, 2), (1, 24, 40), (3, 128, 128), (8, 7, 9)]
)
def test_conv_networks_map_any_spatial_tensor_to_the_image_and_the_classes(shape):
    z = torch.randn(2, *shape)
    decoder = attack_network("recnet", shape, nets="conv", output_shape=(3, 64, 48))
    classifier = attack_network("colornet", shape, nets="conv", classes=5)
    assert decoder(z).shape == (2, 3, 64, 48) and classifier.eval()(z).shape == (2, 5)
    assert describe(decoder)["arch"] == "recnet_conv" and describe(classifier)["params"] > 0


def test_auto_keeps_the_study_mlps_for_small_and_flat_tensors():
    assert not uses_conv((3, 28, 28))  # the study's size: its MLPs
    assert uses_conv((3, 64, 64)) and uses_conv((1, 64, 64)) and uses_conv((256, 4, 4))
    assert not uses_conv((2048,)) and not uses_conv((512, 1, 1)) and not uses_conv((3, 64, 64), "mlp")
    assert uses_conv((3, 28, 28), "conv")
    assert describe(attack_network("recnet", (3, 28, 28), output_shape=(3, 28, 28)))["arch"] == "recnet"
    with pytest.raises(ValueError, match="one of auto, mlp, conv"):
        uses_conv((3, 64, 64), "big")


def test_the_epoch_cap_rises_for_small_data_and_stays_for_large():
    base = TrainConfig(epochs=15, patience=2)
    assert attack_training(base, 54_000, conv=False, min_steps=1000).epochs == 15
    assert attack_training(base, 2_000, conv=False, min_steps=None).epochs == 15
    small = attack_training(base, 1_200, conv=False, min_steps=1000)  # 1,080 kept: 9 steps an epoch
    assert (small.epochs, small.patience) == (112, 12)  # patience: a tenth of the steps, 100 = 12 epochs
    conv = attack_training(base, 2_000, conv=True, min_steps=1000)  # 1,800 kept, batches of 32: 57 steps
    assert (conv.epochs, conv.batch_size, conv.schedule, conv.patience) == (18, 32, "onecycle", 5)
    assert attack_training(base, 20, conv=True, min_steps=1000).epochs == 400  # the most


def test_one_cycle_early_stopping_waits_for_the_peak():
    """A one-cycle rate rises for 30% of the steps: stopping on a worse epoch then would end the run
    before it has learnt anything at the rate it was set."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    model = torch.nn.Linear(4, 1)
    calls = iter([5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0])  # always worse after the first

    def loss(out, target):
        return torch.nn.functional.mse_loss(out, target) if out.requires_grad else torch.tensor(next(calls))

    onecycle = TrainConfig(epochs=10, patience=1, schedule="onecycle", precision="fp32")
    assert fit(model, x, y, loss, onecycle).epochs_run == 4  # epochs 1-3 are the rise; stale from epoch 4
    calls = iter([5.0, 6.0, 7.0, 8.0])
    constant = TrainConfig(epochs=10, patience=1, precision="fp32")
    assert fit(torch.nn.Linear(4, 1), x, y, loss, constant).epochs_run == 2


def _rec(attack, verdict, subject="t"):
    return AttackRecord(subject, attack, "server", "attribute", {"feature_accuracy": 0.5}, verdict)


def test_not_compromised_needs_a_calibrated_attack_behind_it():
    mine = [_rec("colornet", "not compromised"), _rec("linprobe", "not compromised")]
    blind = [_rec("colornet", "not compromised", "identity"), _rec("linprobe", "inconclusive", "identity")]
    cal = calibrate(mine, blind)
    assert [c.calibrated for c in cal.values()] == [False, False]
    assert "no evidence of privacy" in cal["colornet"].why
    assert calibrated_verdict(mine, cal) == "inconclusive"
    sees = [_rec("colornet", "compromised", "identity"), blind[1]]
    assert calibrated_verdict(mine, calibrate(mine, sees)) == "not compromised"
    # a leak found stands, calibrated or not; with no identity control the attacks' verdict stands
    assert calibrated_verdict([_rec("colornet", "compromised")], cal) == "compromised"
    unchecked = calibrate(mine, None)
    assert calibrated_verdict(mine, unchecked) == "not compromised"
    assert unchecked["colornet"].calibrated is None
    # another network on the identity than on the subject says nothing of the subject's
    conv, mlp = ({"network": {"arch": a, "params": 1}} for a in ("colornet_conv", "colornet"))
    subject = [AttackRecord("t", "colornet", "server", "attribute", {}, "not compromised", fit=mlp)]
    identity = [AttackRecord("identity", "colornet", "server", "attribute", {}, "compromised", fit=conv)]
    other = calibrate(subject, identity)["colornet"]
    assert other.calibrated is None and "colornet_conv" in other.why
    assert (
        calibrated_verdict(subject, {"colornet": other}) == "not compromised"
    )  # unchecked: as the attack says


def test_the_attacks_that_learn_from_what_is_sent_are_checked_at_the_subjects_shape():
    """Through the identity the attack reads the attribute; through a tensor of the subject's shape that
    hides as little as that shape can, it does not: it is not calibrated, and the verdict is inconclusive.
    An attack that did not run on the same-shape control (an inversion) keeps the identity's check."""
    mine = [_rec("colornet", "not compromised")]
    identity = [_rec("colornet", "compromised", "identity"), _rec("inversion", "compromised", "identity")]
    shaped = [_rec("colornet", "not compromised", "same-shape")]
    cal = calibrate(mine, identity, shaped)["colornet"]
    assert (cal.calibrated, cal.control) == (False, "same-shape")
    assert "through the same-shape control" in cal.why and cal.to_dict()["control"] == "same-shape"
    assert calibrated_verdict(mine, {"colornet": cal}) == "inconclusive"
    both = [*mine, _rec("inversion", "not compromised")]
    cal = calibrate(both, identity, shaped)
    assert cal["inversion"].control == "identity" and cal["inversion"].calibrated is True
    # trained both network kinds on each and kept the stronger: the same procedure, checked
    kinds = {"network": {"arch": "colornet", "params": 1}, "candidates": [
        {"network": {"arch": a}} for a in ("colornet", "colornet_conv")]}  # fmt: skip
    kept_conv = {**kinds, "network": {"arch": "colornet_conv", "params": 1}}
    subject = [AttackRecord("t", "colornet", "server", "attribute", {}, "not compromised", fit=kinds)]
    control = [
        AttackRecord("same-shape", "colornet", "server", "attribute", {}, "compromised", fit=kept_conv)
    ]
    assert calibrate(subject, None, control)["colornet"].calibrated is True


@pytest.mark.slow
def test_an_audit_whose_attacks_are_blind_through_the_identity_is_inconclusive(tmp_path):
    """Nothing reads the random attribute, through the null transform or through the identity: the null
    transform's "not compromised" is no evidence, and the verdict says so; the background, which the
    probes read through the identity, keeps its "not compromised"."""
    common = ["--transform", "null", "--data", "shapes", "--size", "32", "--attack", "linprobe", "knnprobe",
              "--n-train", "300", "--n-test", "300", "--json"]  # fmt: skip
    r = run_cli("audit", *common, "--attribute", "random", "--out", tmp_path / "rnd")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {c["calibrated"] for c in out["calibration"].values()} == {False}
    assert out["verdict"] == "inconclusive"
    page = (tmp_path / "rnd" / "report.html").read_text()
    assert "blind through the identity" in page and "none of them is calibrated" in page
    r = run_cli("audit", *common, "--attribute", "background", "--out", tmp_path / "bg")
    out = json.loads(r.stdout)
    assert out["verdict"] == "not compromised" and out["calibration"]["linprobe"]["calibrated"] is True


@pytest.mark.slow
def test_a_120_image_folder_trains_its_attacks_long_enough_to_read_a_visible_attribute(tmp_path):
    """120 training images of 48x48 (over 3x32x32 values: convolutional networks): 15 epochs in batches
    would be a handful of steps; the raised epoch cap lets ColorNet read the background through the
    identity, which calibrates it."""
    import csv

    from PIL import Image

    from obfaudit.data.shapes import make_shapes

    root, rows = tmp_path / "small", []
    for split, n, seed in (("train", 120, 0), ("test", 80, 1)):
        data = make_shapes(n, seed=seed, size=48, split=split)
        for i in range(n):
            rel = f"{split}/{data.classes['shape'][int(data.labels['shape'][i])]}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            img = (data.x[i].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
            Image.fromarray(img).save(root / rel)
            rows.append(
                {"path": rel, "background": data.classes["background"][int(data.labels["background"][i])]}
            )
    with (root / "attributes.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "background"])
        w.writeheader()
        w.writerows(rows)
    r = run_cli("audit", "--transform", "null", "--data", root, "--attack", "colornet", "--min-steps", "300",
                "--out", tmp_path / "a", "--cache", tmp_path / "c", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert (
        out["calibration"]["colornet"]["calibrated"] is True
    )  # it reads the background through the identity
    assert out["verdict"] == "not compromised"  # and nothing through zeros: calibrated, so it counts
    # zeros are attacked in closed form (the commonest background); the identity trained the network
    assert out["records"][0]["fit"]["alike"] and out["records"][0]["fit"]["network"]["arch"] == "constant"
    rows = json.loads((tmp_path / "a" / "results.json").read_text())["experiments"]
    identity = next(e for e in rows if e["subject"] == "identity" and e["attack"] == "colornet")
    assert identity["fit"]["network"]["arch"] == "colornet_conv"


def test_what_sends_the_same_tensor_for_every_image_is_attacked_in_closed_form():
    """Nothing can be learnt from inputs that are all alike: RecNet gives the mean training image, ColorNet
    the commonest training value, without training a network (the null control took 56 s of training)."""
    from obfaudit.attacks import AuditConfig, audit_transform
    from obfaudit.data import load_dataset
    from obfaudit.transforms import NullTransform

    train = load_dataset("shapes", split="train", n=200, size=32)
    test = load_dataset("shapes", split="test", n=60, size=32)
    config = AuditConfig(attacks=("recnet", "colornet"), attribute="background", task="shape", nets="auto")
    result = audit_transform("null", NullTransform(), train=train, test=test, config=config)
    recs = {r.attack: r for r in result.records}
    for r in recs.values():
        assert r.fit["alike"] and r.fit["network"] == {"arch": "constant", "params": 0}
    commonest = int(train.labels["background"].bincount().argmax())
    share = float((test.labels["background"] == commonest).float().mean())
    assert recs["colornet"].metrics["feature_accuracy"] == pytest.approx(share)
    mean_image = result.artifacts["recnet/output"][0]
    assert torch.allclose(mean_image, train.x.mean(0), atol=1e-5)


def test_where_both_kinds_fit_both_are_trained_and_the_stronger_on_the_hold_out_is_kept():
    """A pooled image (3x8x8 values) fits an MLP and a convolutional network: ``auto`` trains both and keeps
    the one with the better hold-out score (a classifier's accuracy, a reconstructor's SSIM), where it
    used to take the MLP by size."""
    import torch.nn.functional as F

    from obfaudit.attacks import AuditConfig, audit_transform
    from obfaudit.data import load_dataset
    from obfaudit.models.attack_nets import both_fit

    assert both_fit((3, 8, 8)) and not both_fit((3, 64, 64)) and not both_fit((192,))
    assert not both_fit((3, 8, 8), "mlp") and not both_fit((3, 8, 8), "conv")
    train = load_dataset("shapes", split="train", n=200, size=32)
    test = load_dataset("shapes", split="test", n=60, size=32)
    short = TrainConfig(epochs=2, patience=2)
    config = AuditConfig(
        attacks=("recnet", "colornet"), attribute="background", task="shape", nets="auto", train=short
    )
    result = audit_transform("pool", lambda x: F.avg_pool2d(x, 4), train=train, test=test, config=config)
    for record in result.records:
        candidates = record.fit["candidates"]
        assert {c["network"]["arch"] for c in candidates} == {record.attack, f"{record.attack}_conv"}
        (kept,) = [c for c in candidates if c["kept"]]
        assert record.fit["network"] == kept["network"]
        other = next(c for c in candidates if not c["kept"])
        if record.attack == "recnet":  # ranked by what the audit reports of images: SSIM on the hold-out
            assert kept["val_score"] >= other["val_score"]
        else:
            assert (kept["val_metric"], -kept["val_loss"]) >= (other["val_metric"], -other["val_loss"])
    config = AuditConfig(attacks=("colornet",), attribute="background", task="shape", nets="mlp", train=short)
    result = audit_transform("pool", lambda x: F.avg_pool2d(x, 4), train=train, test=test, config=config)
    (record,) = result.records
    assert "candidates" not in record.fit and record.fit["network"]["arch"] == "colornet"


def test_the_reproductions_verdicts_count_only_calibrated_attacks_as_an_audit_does():
    """An ObfNet of the reproduction whose attacks say "not compromised" while they are blind through the
    identity control is inconclusive in its tables (report.collect.calibrated_verdict), as in an audit."""
    from obfaudit.records import Experiment, Kind
    from obfaudit.report.collect import calibrated_verdict

    def row(subject, verdict, kind=Kind.ATTACK, dataset="colored-mnist"):
        return Experiment(id=f"{subject}/colornet", kind=kind, dataset=dataset, subject=subject,
                          attack="colornet", party="server", output="attribute", verdict=verdict)  # fmt: skip

    on = [row("obfnet-mlp-b64-noise", "not compromised")]
    blind = [row("identity", "not compromised", Kind.CONTROL)]
    sees = [row("identity", "compromised", Kind.CONTROL)]
    assert calibrated_verdict(on, on + blind, "colored-mnist") == "inconclusive"
    assert calibrated_verdict(on, on + sees, "colored-mnist") == "not compromised"
    assert calibrated_verdict(on, on, "colored-mnist") == "not compromised"  # no identity control: as given
    other = [row("identity", "compromised", Kind.CONTROL, dataset="mnist")]
    assert calibrated_verdict(on, on + blind + other, "colored-mnist") == "inconclusive"  # its own dataset's
