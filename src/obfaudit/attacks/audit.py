"""The auditor: runs each attack on a transform and scores it with the true labels.

Attacks see only what their party knows; this module alone holds the test labels. Every
audit can also run the two controls, the identity transform (leaks everything) and the
null transform (keeps nothing), so a reader sees the scale beside the subject.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from obfaudit.attacks.attribute import colornet, proxy_net
from obfaudit.attacks.base import (
    CONTROLS,
    AdversaryKnowledge,
    Observer,
    ServerKnowledge,
    Transform,
)
from obfaudit.attacks.embedding import (
    EmbeddingAnalysis,
    ThirdPartyKnowledge,
    embedding_summary,
    leakage_scores,
)
from obfaudit.attacks.metrics import (
    COMPROMISED,
    NOT_COMPROMISED,
    attribute_summary,
    chance_level,
    compromise_threshold,
    feature_accuracy,
    image_quality,
    read_colour,
    verdict,
)
from obfaudit.attacks.reconstruct import Reconstruction
from obfaudit.data import ImageSet
from obfaudit.train import TrainConfig, accuracy, predict

ATTACKS = ("recnet", "colornet", "noisynet", "pathnet", "tsne")
ATTRIBUTE = "colour"


@dataclass
class AuditConfig:
    """Settings of an audit."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15, patience=2))
    """Training of the server's networks (RecNet, ColorNet)."""
    proxy_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, patience=1))
    """Training of the adversary's NoisyNet and PathNet (30,000 proxy images per epoch)."""
    attacks: tuple[str, ...] = ATTACKS
    tsne_points: int = 1000
    perplexity: float = 15.0
    tsne_backend: str = "opentsne"
    seed: int = 0
    device: str = "cpu"
    samples: int = 10
    """Test images whose reconstructions are kept for figures."""

    def __post_init__(self) -> None:
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown attacks {sorted(unknown)}; choose from {ATTACKS}")


@dataclass
class AuditResult:
    """One record per attack (plain JSON-able dicts) and arrays kept for figures."""

    subject: str
    records: list[dict] = field(default_factory=list)
    artifacts: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        verdicts = [r["verdict"] for r in self.records if r.get("verdict")]
        return COMPROMISED if COMPROMISED in verdicts else NOT_COMPROMISED


def _record(subject: str, attack, metrics: dict, fit: dict | None = None, seconds: float = 0.0) -> dict:
    return {
        "subject": subject,
        "attack": attack.name,
        "party": str(attack.party),
        "verdict": metrics.get("verdict"),
        "metrics": metrics,
        "fit": fit or {},
        "seconds": round(seconds, 3),
    }


def run_reconstruction(
    observe: Observer,
    train: ImageSet,
    test: ImageSet,
    config: AuditConfig,
    *,
    infnet: nn.Module | None,
) -> tuple[Reconstruction, dict, dict, torch.Tensor]:
    attack = Reconstruction(config=replace(config.train, seed=config.seed, device=config.device))
    fit = attack.fit(observe, ServerKnowledge(train))
    recon = attack.infer(observe(test))
    metrics = image_quality(recon, test.x)
    if infnet is not None and "digit" in test.labels:
        metrics["digit_acc_on_reconstructions"] = accuracy(
            predict(infnet, recon, device=config.device).cpu(), test.labels["digit"]
        )
    if ATTRIBUTE in test.labels and recon.shape[1] == 3:
        k = len(test.classes[ATTRIBUTE])
        colour = read_colour(recon)
        fa = feature_accuracy(colour, test.labels[ATTRIBUTE])
        metrics.update(
            colour_recovered=fa,
            feature_accuracy=fa,
            chance=chance_level(k),
            threshold=compromise_threshold(k),
            verdict=verdict(fa, k),
        )
    return attack, metrics, fit, recon


def audit_transform(
    subject: str,
    transform: Transform,
    *,
    train: ImageSet,
    test: ImageSet,
    proxies: dict[str, ImageSet] | None = None,
    infnet: nn.Module | None = None,
    config: AuditConfig | None = None,
) -> AuditResult:
    """Run the configured attacks on ``transform`` and score them on ``test``.

    Args:
        subject: the transform's name in the results.
        transform: a module or callable mapping a batch of images to a batch of tensors.
        train: the original training split (the server's knowledge).
        test: the test split whose transformed images are attacked and scored.
        proxies: the adversary's proxy datasets by name ("noisy", "path").
        infnet: the clean InfNet, to score digits on reconstructions.
        config: the audit's settings.
    """
    config = config or AuditConfig()
    proxies = proxies or {}
    observe = Observer(transform, device=config.device)
    result = AuditResult(subject)
    has_attr = ATTRIBUTE in test.labels
    k = len(test.classes[ATTRIBUTE]) if has_attr else 0
    result.artifacts["originals"] = test.x[: config.samples]
    result.artifacts["transformed"] = observe(test)[: config.samples]
    for name in config.attacks:
        t0 = time.perf_counter()
        if name == "recnet":
            attack, metrics, fit, recon = run_reconstruction(observe, train, test, config, infnet=infnet)
            result.artifacts["reconstructions"] = recon[: config.samples]
        elif name in ("colornet", "noisynet", "pathnet"):
            if not has_attr:
                continue
            if name == "colornet":
                attack = colornet(replace(config.train, seed=config.seed, device=config.device))
                knowledge = ServerKnowledge(train)
            else:
                proxy = name.removesuffix("net")
                if proxy not in proxies:
                    raise ValueError(f"{name} needs the {proxy!r} proxy dataset")
                attack = proxy_net(proxy, replace(config.proxy_train, seed=config.seed, device=config.device))
                knowledge = AdversaryKnowledge(proxies[proxy])
            fit = attack.fit(observe, knowledge)
            metrics = attribute_summary(attack.infer(observe(test)), test.labels[ATTRIBUTE], k)
        else:  # tsne
            if not has_attr:
                continue
            sub = test.subset(slice(0, config.tsne_points))
            attack = EmbeddingAnalysis(
                perplexity=config.perplexity, seed=config.seed, backend=config.tsne_backend
            )
            traffic = observe(test)[: config.tsne_points]
            fit = attack.fit(None, ThirdPartyKnowledge(traffic))
            emb = attack.infer(traffic).numpy()
            scores = leakage_scores(
                traffic.numpy(),
                emb,
                sub.labels["digit"].numpy(),
                sub.labels[ATTRIBUTE].numpy(),
                seed=config.seed,
            )
            metrics = {**embedding_summary(scores, k), **scores}
            result.artifacts["embedding"] = emb
            result.artifacts["embedding_labels"] = {
                "digit": sub.labels["digit"].numpy(),
                ATTRIBUTE: sub.labels[ATTRIBUTE].numpy(),
            }
        result.records.append(_record(subject, attack, metrics, fit, time.perf_counter() - t0))
    return result


def audit(
    transform: Transform,
    *,
    subject: str = "subject",
    controls: bool = True,
    **kwargs,
) -> dict[str, AuditResult]:
    """Audit ``transform`` and, with ``controls``, the identity and null transforms beside it."""
    results = {subject: audit_transform(subject, transform, **kwargs)}
    if controls:
        for name, make in CONTROLS.items():
            results[name] = audit_transform(name, make(), **kwargs)
    return results


def records_table(results: dict[str, AuditResult]) -> list[dict]:
    """Flat rows (subject, attack, party, score, verdict) for printing or CSV."""
    rows = []
    for res in results.values():
        for r in res.records:
            m = r["metrics"]
            rows.append(
                {
                    "subject": r["subject"],
                    "attack": r["attack"],
                    "party": r["party"],
                    "feature_accuracy": m.get("feature_accuracy"),
                    "threshold": m.get("threshold"),
                    "verdict": r["verdict"],
                    "mse": m.get("mse"),
                    "psnr_db": m.get("psnr_db"),
                    "ssim": m.get("ssim"),
                }
            )
    return rows
