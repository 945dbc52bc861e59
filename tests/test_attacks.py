import math

import numpy as np
import pytest
import torch

import obfaudit.attacks.attribute as attribute_mod
from obfaudit.attacks import (
    AdversaryKnowledge,
    AuditConfig,
    IdentityTransform,
    NullTransform,
    Observer,
    ServerKnowledge,
    audit,
    audit_transform,
    chance_level,
    colornet,
    compromise_threshold,
    feature_accuracy,
    image_quality,
    leakage_scores,
    proxy_net,
    read_colour,
    verdict,
)
from obfaudit.data import load_colored_mnist, make_noisy, make_path
from obfaudit.errors import ThreatModelError
from obfaudit.train import TrainConfig


@pytest.mark.parametrize("k,threshold", [(2, 0.75), (3, 0.7), (5, 0.4), (7, 0.3), (10, 0.2), (100, 0.1)])
def test_threshold_rule(k, threshold):
    assert compromise_threshold(k) == pytest.approx(threshold)
    assert compromise_threshold(k) > chance_level(k)


def test_feature_accuracy_by_hand():
    pred = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    true = torch.tensor([0, 1, 2, 3, 0, 0, 0, 0])
    assert feature_accuracy(pred, true) == 5 / 8
    with pytest.raises(ValueError):
        feature_accuracy(pred[:3], true)
    with pytest.raises(ValueError):
        feature_accuracy(torch.tensor([]), torch.tensor([]))


def test_verdict_is_strictly_above_threshold():
    assert verdict(0.31, 7) == "compromised"
    assert verdict(0.30, 7) == "not compromised"
    assert verdict(1 / 7, 7) == "not compromised"


def test_colour_readout_is_exact_on_clean_images():
    test = load_colored_mnist("test")
    assert feature_accuracy(read_colour(test.x), test.labels["colour"]) == 1.0


def test_image_quality_on_known_images():
    x = torch.zeros(4, 3, 28, 28)
    same = image_quality(x + 0.5, x + 0.5)
    assert same["mse"] == 0 and same["ssim"] == pytest.approx(1.0) and math.isinf(same["psnr_db"])
    off = image_quality(x + 0.1, x)  # MSE 0.01 -> PSNR 20 dB
    assert off["mse"] == pytest.approx(0.01, rel=1e-4)
    assert off["psnr_db"] == pytest.approx(20.0, abs=1e-3)
    rng = np.random.default_rng(0)
    noisy = torch.from_numpy(rng.random((4, 3, 28, 28), dtype=np.float32))
    assert image_quality(noisy, x + 0.5)["ssim"] < 0.2


def test_adversary_refuses_private_data():
    train = load_colored_mnist("train").subset(slice(0, 50))
    with pytest.raises(ThreatModelError):
        AdversaryKnowledge(train)
    noisy = make_noisy(70, seed=0)
    AdversaryKnowledge(noisy)  # a proxy is fine
    # the adversary's networks refuse server knowledge, and the server's refuse proxies
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ThreatModelError):
        proxy_net("noisy", cfg).fit(Observer(IdentityTransform()), ServerKnowledge(train))
    with pytest.raises(ThreatModelError):
        colornet(cfg).fit(Observer(IdentityTransform()), AdversaryKnowledge(noisy))


@pytest.fixture(scope="module")
def small_data():
    train = load_colored_mnist("train").subset(slice(0, 1200))
    test = load_colored_mnist("test").subset(slice(0, 350))
    proxies = {"noisy": make_noisy(2100, seed=1), "path": make_path(2100, seed=2)}
    return train, test, proxies


@pytest.fixture(scope="module")
def control_results(small_data):
    train, test, proxies = small_data
    cfg = AuditConfig(
        train=TrainConfig(epochs=4, patience=None, val_fraction=0),
        proxy_train=TrainConfig(epochs=2, patience=None, val_fraction=0),
        tsne_points=300,
    )
    return audit(
        NullTransform(),
        subject="null-as-subject",
        controls=True,
        train=train,
        test=test,
        proxies=proxies,
        config=cfg,
    )


def _by_attack(result):
    return {r["attack"]: r for r in result.records}


def test_identity_control_is_compromised(control_results):
    ident = _by_attack(control_results["identity"])
    assert ident["colornet"]["metrics"]["feature_accuracy"] > 0.9
    assert ident["noisynet"]["metrics"]["feature_accuracy"] > 0.5
    assert ident["recnet"]["metrics"]["colour_recovered"] > 0.9
    # raw-pixel neighbours follow digit shape first, yet colour is far above the threshold
    assert ident["tsne"]["metrics"]["raw"]["knn_colour_acc"] > 0.5
    assert ident["tsne"]["verdict"] == "compromised"
    assert control_results["identity"].verdict == "compromised"
    assert {r["party"] for r in control_results["identity"].records} == {
        "server",
        "adversary",
        "third-party",
    }


def test_null_control_leaks_nothing(control_results):
    null = _by_attack(control_results["null"])
    for name in ("colornet", "noisynet", "pathnet"):
        fa = null[name]["metrics"]["feature_accuracy"]
        assert fa <= 0.3 and null[name]["verdict"] == "not compromised", (name, fa)
    assert null["recnet"]["metrics"]["ssim"] < ident_ssim(control_results)
    assert control_results["null"].verdict == "not compromised"


def ident_ssim(results):
    return _by_attack(results["identity"])["recnet"]["metrics"]["ssim"]


def test_adversary_only_ever_trains_on_proxies(small_data, monkeypatch):
    """Spy on every attribute attack: an adversary fit on a private split fails this test."""
    train, test, proxies = small_data
    seen = []
    original = attribute_mod.AttributeInference.fit

    def spy(self, observe, knowledge):
        seen.append((str(self.party), knowledge.data.source, knowledge.data.split))
        return original(self, observe, knowledge)

    monkeypatch.setattr(attribute_mod.AttributeInference, "fit", spy)
    cfg = AuditConfig(
        train=TrainConfig(epochs=1, patience=None, val_fraction=0),
        proxy_train=TrainConfig(epochs=1, patience=None, val_fraction=0),
        attacks=("colornet", "noisynet", "pathnet"),
    )
    audit_transform("id", IdentityTransform(), train=train, test=test, proxies=proxies, config=cfg)
    adversary = [s for s in seen if s[0] == "adversary"]
    assert len(adversary) == 2
    assert all(src in ("noisy", "path") and split == "proxy" for _, src, split in adversary)
    assert ("server", "colored-mnist", "train") in seen


def test_any_callable_is_a_transform(small_data):
    train, test, proxies = small_data

    def drop_red(x):  # a hand-written transform that removes one channel
        return x[:, 1:]

    cfg = AuditConfig(
        train=TrainConfig(epochs=2, patience=None, val_fraction=0), attacks=("colornet", "recnet")
    )
    res = audit_transform("drop-red", drop_red, train=train, test=test, proxies=proxies, config=cfg)
    rec = _by_attack(res)
    assert rec["recnet"]["metrics"]["mse"] >= 0
    # red vs magenta vs white... differ only in the red channel, so some colours merge
    assert 0.3 < rec["colornet"]["metrics"]["feature_accuracy"] < 0.95


def test_leakage_scores_see_colour_subclusters():
    rng = np.random.default_rng(0)
    digit = np.repeat(np.arange(3), 70)
    colour = np.tile(np.arange(7), 30)
    centres = rng.normal(0, 10, (3, 2))
    offsets = rng.normal(0, 1.5, (7, 2))
    emb = centres[digit] + offsets[colour] + rng.normal(0, 0.2, (210, 2))
    scores = leakage_scores(emb, emb, digit, colour)
    assert scores["embedding"]["knn_colour_acc_within_digit"] > 0.9
    assert scores["embedding"]["knn_digit_acc"] > 0.9
    shuffled = leakage_scores(emb, emb, digit, rng.permutation(colour))
    assert shuffled["embedding"]["knn_colour_acc_within_digit"] < 0.4
