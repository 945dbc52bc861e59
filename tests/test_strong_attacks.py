"""The stronger attacks: white-box inversion, the eavesdropper's decoder, probes."""

import json

import pytest
import torch

from obfaudit.attacks import AuditConfig, audit_transform
from obfaudit.attacks.inversion import invert
from obfaudit.attacks.metrics import image_quality
from obfaudit.data import load_colored_mnist, load_proxy
from obfaudit.train import TrainConfig
from obfaudit.transforms import IdentityTransform, NullTransform
from tests.conftest import run_cli


def test_inversion_recovers_the_identity():
    x = load_colored_mnist("test").x[:30]
    assert image_quality(invert(IdentityTransform(), x, (3, 28, 28)), x)["ssim"] >= 0.95


def test_inversion_keeps_the_transform_weights_untouched():
    net = torch.nn.Conv2d(3, 3, 1)
    before = [p.detach().clone() for p in net.parameters()]
    invert(net, torch.rand(4, 3, 8, 8), (3, 8, 8), steps=5)
    assert all(
        torch.equal(a, b) and p.requires_grad
        for a, b, p in zip(before, net.parameters(), net.parameters(), strict=True)
    )


@pytest.fixture(scope="module")
def results():
    train = load_colored_mnist("train").subset(slice(0, 700))
    test = load_colored_mnist("test").subset(slice(0, 140))
    proxies = {"path": load_proxy("path", seed=2, n=1400)}
    cfg = AuditConfig(
        attacks=("inversion", "decoder", "linprobe", "knnprobe", "linprobe-proxy", "knnprobe-proxy"),
        train=TrainConfig(epochs=2, patience=None, val_fraction=0),
        proxy_train=TrainConfig(epochs=2, patience=None, val_fraction=0),
    )
    return {
        name: audit_transform(name, t, train=train, test=test, proxies=proxies, config=cfg)
        for name, t in (("identity", IdentityTransform()), ("null", NullTransform()))
    }


def test_every_new_attack_runs_under_its_party(results):
    ident = {r.attack: r for r in results["identity"].records}
    assert set(ident) == {"inversion", "decoder", "linprobe", "knnprobe", "linprobe-proxy", "knnprobe-proxy"}
    assert {ident[a].party for a in ("inversion", "decoder", "linprobe-proxy", "knnprobe-proxy")} == {
        "adversary"
    }
    assert ident["linprobe"].party == "server"
    for a in ("linprobe", "linprobe-proxy", "inversion"):
        assert ident[a].verdict == "compromised", a


def test_on_the_null_control_the_probes_are_at_chance(results):
    for r in results["null"].records:
        if r.output == "attribute":
            lo, hi = r.metrics["feature_accuracy_ci"]
            assert lo <= 1 / 7 <= hi or hi < 0.3, (r.attack, lo, hi)


def test_inversion_refuses_a_graph_it_cannot_differentiate(tmp_path):
    from obfaudit.models import create_model
    from obfaudit.transforms.onnx import export_onnx

    export_onnx(
        create_model("obfnet_mlp", input_shape=(3, 28, 28), bottleneck=4), tmp_path / "t.onnx", (3, 28, 28)
    )
    r = run_cli(
        "audit",
        "--transform",
        tmp_path / "t.onnx",
        "--attack",
        "inversion",
        "--n-test",
        "70",
        "--out",
        tmp_path / "o",
    )
    assert r.returncode == 1 and "needs gradients" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli(
        "audit",
        "--transform",
        tmp_path / "t.onnx",
        "--attack",
        "inversion",
        "linprobe",
        "--n-train",
        "300",
        "--n-test",
        "70",
        "--no-controls",
        "--out",
        tmp_path / "o2",
        "--json",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["skipped"]["t"] == {"inversion": "needs gradients"}
