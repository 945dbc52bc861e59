import math

import numpy as np
import pytest
import torch

import obfaudit.attacks.attribute as attribute_mod
from obfaudit.attacks import (
    AdversaryKnowledge,
    AuditConfig,
    ServerKnowledge,
    attack_class,
    audit_transform,
    chance_level,
    compromise_threshold,
    feature_accuracy,
    image_quality,
    read_colour,
    verdict,
)
from obfaudit.attacks.embedding import leakage_scores
from obfaudit.data import load_colored_mnist, load_mnist, make_noisy, make_path
from obfaudit.errors import ThreatModelError
from obfaudit.train import TrainConfig
from obfaudit.transforms import IdentityTransform, NullTransform


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


@pytest.mark.parametrize("channels", [1, 3])
def test_image_quality_is_scikit_images_per_image(channels):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    test = load_colored_mnist("test") if channels == 3 else load_mnist("test")
    o = test.x[:40]
    g = torch.Generator().manual_seed(0)
    r = (o * 0.7 + 0.2 * torch.rand(o.shape, generator=g)).clamp(0, 1)
    got = image_quality(r, o, per_image=True)["per_image"]
    for i in range(len(o)):
        ri, oi = (np.moveaxis(a[i].numpy(), 0, -1) for a in (r, o))
        want = structural_similarity(oi, ri, data_range=1.0, channel_axis=-1)
        assert got["ssim"][i] == pytest.approx(want, abs=1e-5)
        assert got["psnr_db"][i] == pytest.approx(peak_signal_noise_ratio(oi, ri, data_range=1.0), abs=1e-4)


def test_adversary_refuses_private_data():
    train = load_colored_mnist("train").subset(slice(0, 50))
    with pytest.raises(ThreatModelError):
        AdversaryKnowledge(IdentityTransform(), {"stolen": train})
    noisy = make_noisy(70, seed=0)
    AdversaryKnowledge(IdentityTransform(), {"noisy": noisy})  # a proxy is fine
    # the adversary's networks refuse server knowledge, and the server's refuse the adversary's
    config = AuditConfig(train=TrainConfig(epochs=1), proxy_train=TrainConfig(epochs=1))
    with pytest.raises(ThreatModelError):
        attack_class("noisynet")(config).fit(ServerKnowledge(IdentityTransform(), train))
    with pytest.raises(ThreatModelError):
        attack_class("colornet")(config).fit(AdversaryKnowledge(IdentityTransform(), {"noisy": noisy}))
    with pytest.raises(ThreatModelError):
        ServerKnowledge(IdentityTransform(), noisy)  # the server's knowledge is the private split


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
    from obfaudit.attacks.prepare import control_transforms

    subjects = {"null-as-subject": NullTransform, **control_transforms(seed=0)}
    return {
        name: audit_transform(name, make(), train=train, test=test, proxies=proxies, config=cfg)
        for name, make in subjects.items()
    }


def _by_attack(result):
    return {r.attack: {"metrics": r.metrics, "verdict": r.verdict, "party": r.party} for r in result.records}


@pytest.mark.slow
def test_identity_control_is_compromised(control_results):
    ident = _by_attack(control_results["identity"])
    assert ident["colornet"]["metrics"]["feature_accuracy"] > 0.9
    assert ident["noisynet"]["metrics"]["feature_accuracy"] > 0.5
    assert ident["recnet"]["metrics"]["attribute_recovered"] > 0.9
    # raw-pixel neighbours follow digit shape first, yet colour is far above the threshold
    assert ident["tsne"]["metrics"]["raw"]["knn_attribute_acc"] > 0.5
    assert ident["tsne"]["verdict"] == "compromised"
    assert control_results["identity"].verdict == "compromised"
    assert {r.party for r in control_results["identity"].records} == {
        "server",
        "adversary",
        "third-party",
    }


@pytest.mark.slow
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
    original = attribute_mod.AttributeClassifier._train

    def spy(self, z, data, config):
        seen.append((str(self.party), data.source, data.split))
        return original(self, z, data, config)

    monkeypatch.setattr(attribute_mod.AttributeClassifier, "_train", spy)
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


def _reachable_tensors(root, max_depth: int = 12) -> list[torch.Tensor]:
    """Every tensor reachable from ``root`` through attributes, containers and modules.

    Modules, functions and classes are not entered through their globals: a knowledge
    object's own state is what an attack receives.
    """
    import types
    from dataclasses import fields, is_dataclass

    found, seen, stack = [], set(), [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > max_depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
            continue
        if isinstance(
            obj, types.ModuleType | type | types.FunctionType | types.BuiltinFunctionType | str | bytes
        ):
            continue
        children = []
        if isinstance(obj, dict | types.MappingProxyType):
            children = list(obj.keys()) + list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            children = list(obj)
        else:
            if is_dataclass(obj):
                children += [getattr(obj, f.name) for f in fields(obj)]
            children += list(getattr(obj, "__dict__", {}).values())
        stack += [(c, depth + 1) for c in children]
    return found


def test_proxies_of_bytes_and_floats_pool_on_one_scale():
    """Generated proxies are stored as bytes, a folder's as floats: pooled, both read in [0, 1],
    and each proxy's view is its own slice of the pooled transform."""
    from obfaudit.data import load_proxy

    noisy, path = load_proxy("noisy", n=21), make_path(14, seed=0)
    assert noisy.x.dtype == torch.uint8 and path.x.dtype == torch.float32
    k = AdversaryKnowledge(IdentityTransform(), {"noisy": noisy, "path": path})
    pooled = k.proxy_images()
    assert pooled.dtype == torch.float32 and float(pooled.max()) <= 1.0 and len(pooled) == 35
    assert torch.equal(k.observed_proxy("noisy"), noisy.x.float() / 255)
    assert torch.equal(k.observed_proxy("path"), path.x)
    assert k.observed_proxy("path").data_ptr() != path.x.data_ptr()  # a view of the transform, not the images


def test_nothing_private_is_reachable_from_the_adversary(small_data):
    """The adversary's knowledge holds the transform and proxies: no private split, no test label."""
    train, test, proxies = small_data
    cfg = AuditConfig(
        train=TrainConfig(epochs=1, patience=None, val_fraction=0),
        proxy_train=TrainConfig(epochs=1, patience=None, val_fraction=0),
        attacks=("colornet", "noisynet", "pathnet", "recnet"),
    )
    captured = {}
    original = attribute_mod.ProxyColorNet.fit

    def capture(self, knowledge):
        captured[self.name] = knowledge
        return original(self, knowledge)

    attribute_mod.ProxyColorNet.fit = capture
    try:
        # the server's attacks run first: their views of the training split must not leak across
        audit_transform("obf", torch.nn.Conv2d(3, 3, 1), train=train, test=test, proxies=proxies, config=cfg)
    finally:
        attribute_mod.ProxyColorNet.fit = original
    private = [train.x, test.x, *train.labels.values(), *test.labels.values()]
    for knowledge in captured.values():
        assert isinstance(knowledge, AdversaryKnowledge)
        tensors = _reachable_tensors(knowledge)
        assert tensors, "the walk found nothing: it is not looking"
        for t in tensors:
            for p in private:
                assert t.untyped_storage().data_ptr() != p.untyped_storage().data_ptr()
                assert t.shape != p.shape or not torch.equal(t, p)
        # and what the adversary saw through the transform is its proxies only
        assert set(knowledge._observer._views) <= {"proxies"}


def test_transform_follows_the_device():
    """Every model follows the audit's device (here the meta device, which needs no GPU).

    The ObfNet loaded on the CPU used to stay there while its inputs went to cuda.
    """
    from obfaudit.train import predict
    from obfaudit.transforms import Observer

    module = torch.nn.Linear(4, 2)
    Observer(module, device="meta")
    assert all(p.device.type == "meta" for p in module.parameters())
    judge = torch.nn.Linear(4, 3)
    out = predict(judge, torch.zeros(5, 4), device="meta")
    assert out.device.type == "meta" and out.shape == (5, 3)


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
    assert scores["embedding"]["knn_attribute_acc_within_class"] > 0.9
    assert scores["embedding"]["knn_class_acc"] > 0.9
    shuffled = leakage_scores(emb, emb, digit, rng.permutation(colour))
    assert shuffled["embedding"]["knn_attribute_acc_within_class"] < 0.4


def test_standard_pca_in_chunks_is_the_scaler_then_an_exact_pca():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from obfaudit.attacks import probes

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(9000, 40)) @ rng.normal(size=(40, 40)) + 3).astype(np.float32)
    x[:, 7] = 0.5  # a constant feature keeps a scale of 1, as in StandardScaler
    mine = probes.StandardPCA(5).fit(x).transform(x)
    theirs = PCA(5, svd_solver="full").fit_transform(StandardScaler().fit_transform(x))
    signs = np.sign((mine * theirs).sum(axis=0))  # each direction is found up to its sign
    assert np.allclose(mine * signs, theirs, atol=2e-3 * np.abs(theirs).max())
    scaled = probes.StandardPCA(None).fit(x).transform(x)
    assert np.allclose(scaled, StandardScaler().fit_transform(x), atol=1e-4)


def test_a_probe_too_large_to_copy_reads_what_the_copying_probe_reads(monkeypatch):
    from obfaudit.attacks import probes

    torch.manual_seed(0)
    y = torch.randint(0, 3, (600,))
    z = torch.randn(600, 300) * 0.5
    z[torch.arange(600), y] += 2.0  # the attribute sits in three of the 300 features
    from obfaudit.attacks.base import AttackSettings

    settings = AttackSettings(attribute="colour")
    preds = {}
    for limit in (10**12, 0):  # copied, then in chunks
        monkeypatch.setattr(probes, "COPY_LIMIT", limit)
        probe = probes.LinearProbe(settings)
        probe._fit(z, y, "synthetic")
        preds[limit] = probe.infer(z[:200])
    assert isinstance(probe.model.steps[0][1], probes.StandardPCA)
    monkeypatch.setattr(probes, "CHUNKED_WIDTH", 299)  # too wide for its d x d matrices: the copy path
    probe = probes.LinearProbe(settings)
    probe._fit(z, y, "synthetic")
    assert not isinstance(probe.model.steps[0][1], probes.StandardPCA)
    assert (preds[0] == y[:200]).float().mean() > 0.95
    assert (preds[0] == preds[10**12]).float().mean() > 0.97


class _Noisy(torch.nn.Module):
    """A random transform: each pass adds fresh noise (as the noise defence does)."""

    def forward(self, x):
        return x + 0.3 * torch.randn_like(x)


def test_a_random_transform_scores_the_same_whichever_attacks_ran_before(small_data):
    """An attack's draws (here a noisy transform's, in each pass of the inversion) start from its seed: in a
    process that ran other attacks first (a worker, a resumed run) it scores what it scores alone."""
    from obfaudit.attacks import SubjectAudit

    train, test, _ = small_data
    cfg = AuditConfig(
        attacks=("colornet", "inversion"), train=TrainConfig(epochs=1, patience=None, val_fraction=0)
    )

    def auditor():
        return SubjectAudit(
            "noisy", _Noisy(), train=train.subset(slice(0, 300)), test=test.subset(slice(0, 40)), config=cfg
        )

    first = auditor()
    assert first.run("colornet") is not None
    after = first.run("inversion")
    alone = auditor().run("inversion")
    assert after.metrics == alone.metrics
