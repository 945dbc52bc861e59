"""The auditor: runs registered attacks on a transform, each under its own party.

For every requested attack the auditor checks that its needs are met, hands its ``fit``
the knowledge object of its party only (:mod:`.knowledge`), asks it to infer from the
traffic (the transformed test images), and scores the output with the scorer of its
output kind (:mod:`.scoring`), which alone holds the test labels. It never branches on an
attack's name. Every audit can also run the two controls beside the subject.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from obfaudit._io import resolve_device
from obfaudit.attacks.base import Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, ThirdPartyKnowledge
from obfaudit.attacks.registry import attack_class, attack_names
from obfaudit.attacks.scoring import Scorer
from obfaudit.attacks.uncertainty import spread
from obfaudit.data import ImageSet, ProxySet
from obfaudit.records import AttackRecord, overall_verdict
from obfaudit.train import TrainConfig
from obfaudit.transforms import CONTROLS, CheckedTransform, Transform, apply_transform, to_device

#: The study's attacks, run when none are named.
STUDY_ATTACKS = ("recnet", "colornet", "noisynet", "pathnet", "tsne")


@dataclass
class AuditConfig:
    """Settings of an audit."""

    attacks: tuple[str, ...] = STUDY_ATTACKS
    """Registered attacks to run, in this order; one whose needs are not met is skipped, with the reason."""
    attribute: str = "colour"
    """The sensitive attribute: the label name the attribute attacks learn and are scored on."""
    task: str = "digit"
    """The task label (what the InfNet classifies), used to read reconstructions and embeddings."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15, patience=2))
    """Training of the server's networks (RecNet, ColorNet)."""
    proxy_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, patience=1))
    """Training of the adversary's networks on proxy data (30,000 proxy images per epoch)."""
    tsne_points: int = 1000
    """Transformed test images the t-SNE embeds."""
    perplexity: float = 15.0
    """t-SNE perplexity (the study's 15)."""
    tsne_backend: str = "opentsne"
    """t-SNE implementation: opentsne (faster here) or sklearn."""
    seed: int = 0
    """Seeds every attack network, the t-SNE and the scores' folds."""
    device: str = "cpu"
    """Where the transform, the attack networks and the judge run: cpu, cuda, cuda:N or auto."""
    samples: int = 10
    """Test images whose attack outputs are kept for figures."""
    repeats: int = 1
    """Train each attack this many times, with seeds seed, seed+1, ...; the spread is reported."""
    label: str = ""
    """Prefix of progress bars and log lines (the auditor sets it to the subject's name)."""

    def __post_init__(self) -> None:
        for name in self.attacks:
            attack_class(name)  # an unknown name is one clear error, before any work


@dataclass
class AuditResult:
    """One typed record per attack that ran, why others did not, and arrays for figures."""

    subject: str
    records: list[AttackRecord] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Attack name -> why it did not run (its unmet needs)."""
    artifacts: dict[str, torch.Tensor] = field(default_factory=dict)
    """``originals``, ``transformed`` and ``ATTACK/output`` (and ``ATTACK/labels/...``)."""

    @property
    def verdict(self) -> str | None:
        """compromised if any attack says so; None when no attack gave a verdict."""
        return overall_verdict([r.verdict for r in self.records])


def differentiable(transform: Transform, x: torch.Tensor) -> bool:
    """Whether gradient-based attacks can run through ``transform``: it is torch code (not an
    ONNX graph, which says ``differentiable = False``, nor numpy) that accepts a tracked input.
    A constant transform (the null control) counts: its gradient is zero, which is the point."""
    inner = getattr(transform, "transform", transform)
    if getattr(inner, "differentiable", True) is False:
        return False
    with torch.enable_grad():
        try:
            z = transform(x.detach().clone().requires_grad_(True))
        except Exception:  # noqa: BLE001 - a transform that cannot take a grad-tracking input
            return False
    return isinstance(z, torch.Tensor) and not getattr(transform, "numpy_output", False)


def available_needs(
    train: ImageSet | None,
    test: ImageSet,
    proxies: Mapping[str, ProxySet],
    attribute: str,
    *,
    gradients: bool = False,
) -> set[str]:
    """What this audit can offer attacks (see :data:`obfaudit.attacks.base.NEEDS`)."""
    have = {"traffic", "transform"}
    if gradients:
        have.add("gradients")
    if train is not None:
        have.add("train")
    if attribute in test.labels:
        have.add("attribute")
    have |= {f"proxy:{n}" for n, p in proxies.items() if attribute in p.labels}
    if proxies:
        have.add("proxy")
    return have


def audit_transform(
    subject: str,
    transform: Transform,
    *,
    train: ImageSet | None,
    test: ImageSet,
    proxies: Mapping[str, ProxySet] | None = None,
    infnet: nn.Module | None = None,
    attribute_judge: nn.Module | None = None,
    config: AuditConfig | None = None,
    on_attack: Callable[[str], None] | None = None,
    traffic: torch.Tensor | None = None,
    runs: Sequence[int] | None = None,
) -> AuditResult:
    """Run the configured attacks on ``transform`` and score them on ``test``.

    Args:
        subject: the transform's name in the results.
        transform: a module or callable mapping a batch of images to a batch of tensors.
        train: the original training split (the server's knowledge).
        test: the test split whose transformed images are attacked and scored.
        proxies: the adversary's proxy datasets by name ("noisy", "path").
        infnet: the clean InfNet, the judge of the task on reconstructions.
        attribute_judge: a clean attribute classifier, the judge of the attribute on them.
        config: the audit's settings.
        on_attack: called with each attack's name as it starts (for progress).
        traffic: what was captured on the wire for ``test``'s images, row for row; attacked
            instead of ``transform`` applied to them (the live system's view).
        runs: which of the ``config.repeats`` runs to do (default: all); run r trains each
            attack with seed ``config.seed + r``. An executor that spreads the runs over
            workers joins their results with :func:`join_runs`.
    """
    config = replace(config or AuditConfig(), label=f"{subject}: ")
    proxies = dict(proxies or {})
    device = str(resolve_device(config.device))
    transform = CheckedTransform(to_device(transform, device), subject)
    torch.manual_seed(config.seed)  # a random transform draws the same noise for one seed
    if traffic is None:
        traffic = apply_transform(
            transform, test.x, device=device, progress=config.train.progress, desc=f"{subject}: transform"
        )
    elif len(traffic) != len(test):
        raise ValueError(f"{len(traffic)} captured tensors for {len(test)} test images")
    scorer = Scorer(
        test,
        config.attribute,
        config.task,
        judge=infnet,
        attribute_judge=attribute_judge,
        device=device,
        samples=config.samples,
        seed=config.seed,
    )
    builders: dict[Party, Callable[[], object]] = {
        Party.SERVER: lambda: ServerKnowledge(transform, train, device),
        Party.ADVERSARY: lambda: AdversaryKnowledge(transform, proxies, device, test.shape),
        Party.THIRD_PARTY: lambda: ThirdPartyKnowledge(traffic),
    }
    knowledge: dict[Party, object] = {}
    needs = {n for name in config.attacks for n in attack_class(name).needs}
    grads = "gradients" in needs and differentiable(transform, test.x[:2].float().to(device))
    available = available_needs(train, test, proxies, config.attribute, gradients=grads)
    result = AuditResult(subject)
    result.artifacts["originals"] = test.x[: config.samples]
    result.artifacts["transformed"] = traffic[: config.samples]
    for name in config.attacks:
        cls = attack_class(name)
        missing = cls.unmet(available)
        if missing:
            result.skipped[name] = f"needs {', '.join(missing)}"
            continue
        if on_attack:
            on_attack(name)
        t0 = time.perf_counter()
        if cls.party not in knowledge:
            knowledge[cls.party] = builders[cls.party]()
        done = []
        for r in range(config.repeats) if runs is None else runs:
            attack = cls(replace(config, seed=config.seed + r) if r else config)
            fit = attack.fit(knowledge[cls.party])
            done.append((fit, scorer.score(cls.output, attack.infer(traffic), traffic)))
        fit, score = done[0]
        if len(done) > 1:
            seeds = [config.seed + r for r in (range(config.repeats) if runs is None else runs)]
            score.metrics["repeats"] = repeat_spread(seeds, [s.metrics for _, s in done])
        for key, value in score.artifacts.items():
            result.artifacts[f"{name}/{key}"] = value
        result.records.append(
            AttackRecord(
                subject=subject,
                attack=name,
                party=str(cls.party),
                output=str(cls.output),
                metrics=score.metrics,
                verdict=score.verdict,
                fit=fit,
                seconds=round(time.perf_counter() - t0, 3),
            )
        )
    return result


def repeat_spread(seeds: Sequence[int], metrics: Sequence[Mapping]) -> dict:
    """The spread of each headline score over runs with ``seeds`` (the record's ``repeats``)."""
    return {
        "seeds": list(seeds),
        **{
            m: spread([x.get(m) for x in metrics])
            for m in ("feature_accuracy", "ssim", "psnr_db")
            if metrics[0].get(m) is not None
        },
    }


def join_runs(results: Sequence[AuditResult], seeds: Sequence[int]) -> AuditResult:
    """One subject's runs, done apart (one per seed, in seed order), as one audit would give them:
    the first run's records and figures, each record with the spread over all runs."""
    first = results[0]
    if len(results) > 1:
        for i, record in enumerate(first.records):
            record.metrics["repeats"] = repeat_spread(seeds, [res.records[i].metrics for res in results])
    return first


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
            if name != subject:
                results[name] = audit_transform(name, make(), **kwargs)
    return results


__all__ = ["STUDY_ATTACKS", "AuditConfig", "AuditResult", "attack_names", "audit", "audit_transform"]
