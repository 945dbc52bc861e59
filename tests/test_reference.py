"""Reference inverses: an audit is never weaker than the obvious inverse of the transform."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from obfaudit.attacks.auditor import AuditConfig, audit_transform
from obfaudit.attacks.metrics import image_quality
from obfaudit.attacks.reference import is_affine, least_squares, upsampled
from obfaudit.data import load_dataset
from obfaudit.train import TrainConfig
from tests.conftest import run_cli


def pool(x):
    return F.avg_pool2d(x, 4)


MIX = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])


def pool_mix(x):
    """4x4 pooling, then a fixed 1x1 mix of the channels (invertible)."""
    return torch.einsum("oc,nchw->nohw", MIX, F.avg_pool2d(x, 4))


class RandomLinear(torch.nn.Module):
    """A random linear map with more outputs than inputs (invertible): each 8x8 patch of the image (192
    values) to 256 numbers by the same random matrix."""

    def __init__(self, patch: int = 8, outputs: int = 256):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        inputs = 3 * patch * patch
        self.patch = patch
        self.weight = torch.nn.Parameter(torch.randn(outputs, inputs, generator=g) / inputs**0.5)

    def forward(self, x):
        patches = F.unfold(x, self.patch, stride=self.patch)  # (n, 192, patches)
        return torch.einsum("oi,nip->nop", self.weight, patches)


def test_an_affine_transform_is_told_from_one_that_is_not():
    shape = (3, 16, 16)
    assert is_affine(pool, shape) and is_affine(pool_mix, shape) and is_affine(RandomLinear(), shape)
    assert is_affine(lambda x: 2 * x + 1, shape)
    conv = torch.nn.Conv2d(3, 4, 3)
    assert not is_affine(lambda x: torch.relu(conv(x) - 0.2), shape)


def test_least_squares_undoes_an_invertible_linear_map_and_pooling_as_upsampling_does():
    x = load_dataset("shapes", split="test", n=20, size=16).x
    net = RandomLinear()
    with torch.no_grad():
        z = net(x)
    assert image_quality(least_squares(net, z, (3, 16, 16)), x)["ssim"] > 0.999
    # the minimum-norm preimage of an average pool is its block-wise (nearest) upsampling
    z = pool(x)
    assert torch.allclose(
        least_squares(pool, z, (3, 16, 16)), upsampled(z, (3, 16, 16))["nearest"], atol=1e-4
    )


@pytest.fixture(scope="module")
def shapes64():
    return load_dataset("shapes", split="train", n=300, size=64), load_dataset(
        "shapes", split="test", n=60, size=64
    )


def _audit(transform, data, *attacks):
    train, test = data
    config = AuditConfig(
        attacks=attacks,
        attribute="background",
        task="shape",
        nets="auto",
        train=TrainConfig(epochs=1, patience=None, val_fraction=0),
    )
    result = audit_transform("subject", transform, train=train, test=test, config=config)
    return {r.attack: r for r in result.records}, result


@pytest.mark.parametrize("transform", [pool, pool_mix], ids=["pool", "pool-then-mix"])
def test_on_a_pooled_image_the_best_attack_is_at_least_the_upsampling_of_what_is_sent(shapes64, transform):
    records, _ = _audit(transform, shapes64, "recnet", "reference", "inversion-reference")
    test = shapes64[1]
    with torch.no_grad():
        naive = upsampled(pool(test.x), (3, 64, 64))["nearest"]  # the pooled image itself, blown up
    floor = image_quality(naive, test.x)["psnr_db"]
    best = max(r.metrics["psnr_db"] for r in records.values())
    assert records["reference"].metrics["psnr_db"] >= floor - 0.01 and best >= floor - 0.01
    expected = "least-squares" if transform is pool_mix else None
    if expected:  # upsampling the mixed colours fits what was sent worse than the least-squares inverse
        assert set(records["reference"].fit["chosen"]) == {expected}


def test_an_invertible_linear_map_is_undone_with_ssim_above_0_9(shapes64):
    records, _ = _audit(RandomLinear(), shapes64, "reference", "inversion-reference")
    assert records["reference"].metrics["ssim"] > 0.99 and records["reference"].fit["least_squares"]
    assert records["inversion-reference"].metrics["ssim"] > 0.9


def test_no_reference_applies_to_a_non_linear_transform_of_another_shape_and_it_says_so(shapes64):
    conv = torch.nn.Conv2d(3, 8, 3, stride=2)
    records, result = _audit(lambda x: torch.relu(conv(x)), shapes64, "reference", "linprobe")
    assert "reference" not in records and "no reference inverse applies" in result.skipped["reference"]


def test_an_onnx_pooling_gets_the_upsampling_and_the_inversions_through_its_conversion(tmp_path):
    from obfaudit.transforms.onnx import export_onnx

    class Pool(torch.nn.Module):
        def forward(self, x):
            return pool(x)

    export_onnx(Pool(), tmp_path / "pool.onnx", (3, 32, 32))
    r = run_cli(
        "audit", "--transform", tmp_path / "pool.onnx", "--data", "shapes", "--size", "32",
        "--n-train", "200", "--n-test", "60", "--attribute", "background", "--attack", "reference",
        "inversion-reference", "--no-controls", "--out", tmp_path / "o", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    records = {rec["attack"]: rec for rec in json.loads(r.stdout)["records"]}
    assert set(records) == {"reference", "inversion-reference"}
    assert records["reference"]["fit"]["least_squares"] and records["reference"]["fit"]["upsampling"]


def test_an_attack_is_checked_on_a_tensor_of_the_subjects_shape_and_says_so_on_its_line(tmp_path):
    # a flat vector is attacked by an MLP, the identity's 48x48 image (6,912 values) by a CNN: the identity
    # says nothing of the MLP. The same-shape control sends the image's values flat too: two epochs of the
    # MLP read nothing there, so its "not compromised" on the subject is no evidence (before this control
    # the line said "not checked" and the verdict was "not compromised")
    (tmp_path / "flatten.py").write_text("def flat(x):\n    return x.flatten(1)\n")
    r = run_cli(
        "audit", "--transform", "flatten:flat", "--data", "shapes", "--size", "48", "--n-train", "200",
        "--n-test", "60", "--attribute", "background", "--attack", "colornet", "--epochs", "2", "--min-steps",
        "0", "--out", tmp_path / "o", "--cache", tmp_path / "c", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("colornet"))
    assert line.endswith("not compromised  (not calibrated: blind through the same-shape control)"), line
    assert r.stdout.startswith("flat: inconclusive")
    # the same-shape control of a flat vector is that flat vector: the subject is its own control
    assert "control same-shape (6912, lossless: the image's values in order): the subject itself" in r.stdout
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["calibration"]["colornet"]["control"] == "same-shape"
    nets = {e["subject"]: e["fit"]["network"]["arch"] for e in results["experiments"]}
    assert (nets["flat"], nets["identity"]) == ("colornet", "colornet_conv") and "same-shape" not in nets


def test_an_inversion_that_does_not_apply_is_no_weaker_verdict(tmp_path):
    # a non-linear transform of another shape has no reference inverse: inversion-reference cannot start,
    # which is no inversion left out (the random-start one runs)
    (tmp_path / "convrelu.py").write_text(
        "import torch\n\ntorch.manual_seed(0)\nconv = torch.nn.Conv2d(3, 8, 3, stride=2)\n\n"
        "def forward(x):\n    return torch.relu(conv(x))\n"
    )
    r = run_cli(
        "audit", "--transform", "convrelu:forward", "--data", "shapes", "--size", "32", "--n-train", "200",
        "--n-test", "60", "--attribute", "background", "--attack", "inversion-reference", "linprobe",
        "--no-controls", "--out", tmp_path / "o", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    (skipped,) = results["skipped"].values()  # the one subject's
    assert "no reference inverse applies" in skipped["inversion-reference"]
    assert "weaker_attacks_only" not in results
