"""The auditor: runs registered attacks on a transform, each under its own party.

For every requested attack the auditor checks that its needs are met, hands its ``fit``
the knowledge object of its party only (:mod:`.knowledge`), asks it to infer from the
traffic (the transformed test images), and scores the output with the scorer of its
output kind (:mod:`.scoring`), which alone holds the test labels. It never branches on an
attack's name. The controls audited beside a subject are made in :mod:`.prepare`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from obfaudit._io import resolve_device
from obfaudit.attacks.base import AttackSettings, NotApplicable
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, ThirdPartyKnowledge
from obfaudit.attacks.registry import attack_class, attack_names
from obfaudit.attacks.scoring import Scorer
from obfaudit.attacks.uncertainty import spread
from obfaudit.data import ImageSet, ProxySet
from obfaudit.errors import ObfauditError
from obfaudit.records import AttackRecord
from obfaudit.threat import (
    ANY_PROXY,
    ATTRIBUTE,
    GRADIENTS,
    KNOWN_PAIRS,
    STUDY_ATTACKS,
    TRAFFIC,
    TRAIN,
    TRANSFORM,
    Need,
    Party,
    Verdict,
    overall_verdict,
    why_unmet,
)
from obfaudit.transforms import CheckedTransform, Transform, apply_transform, to_device


@dataclass
class AuditConfig(AttackSettings):
    """Settings of an audit: which attacks, how often, and what each attack reads."""

    attacks: tuple[str, ...] = STUDY_ATTACKS
    """Registered attacks to run, in this order; one whose needs are not met is skipped, with the reason."""
    repeats: int = 1
    """Train each attack this many times, with seeds seed, seed+1, ...; the spread is reported."""

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
    def verdict(self) -> Verdict | None:
        """compromised if any attack says so; None when no attack gave a verdict."""
        return overall_verdict([r.verdict for r in self.records])


def differentiable(transform: Transform, x: torch.Tensor) -> bool:
    """Whether gradient-based attacks can run through ``transform``: gradients flow from what it
    sends back to the images. Not for an ONNX graph (it says ``differentiable = False``), numpy,
    or torch code that detaches or runs under ``no_grad`` (its output tracks no input). A
    transform that uses the input only to be constant (the null control, ``x * 0``) counts: its
    gradient is zero, which is the point."""
    inner = getattr(transform, "transform", transform)
    if getattr(inner, "differentiable", True) is False:
        return False
    with torch.enable_grad():
        try:
            x = x.detach().clone().requires_grad_(True)
            z = transform(x)
            if getattr(transform, "numpy_output", False) or not isinstance(z, torch.Tensor):
                return False
            if not (z.is_floating_point() and z.requires_grad):
                return False
            (grad,) = torch.autograd.grad(z.float().sum(), x, allow_unused=True)
        except Exception:  # noqa: BLE001 - a transform that cannot take, or pass back, gradients
            return False
    return grad is not None


def known_pairs(train: ImageSet | None, k: int, seed: int) -> ImageSet | None:
    """The ``k`` training images (a seeded draw, never test images) whose sent tensors the adversary
    holds beside them; None for none."""
    if not k or train is None:
        return None
    if k > len(train):
        raise ObfauditError(f"--known-pairs {k}: the training split has only {len(train)} images")
    g = torch.Generator().manual_seed(seed + 524287)
    return train.subset(torch.randperm(len(train), generator=g)[:k])


def available_needs(
    train: ImageSet | None,
    test: ImageSet,
    proxies: Mapping[str, ProxySet],
    attribute: str,
    *,
    gradients: bool = False,
    known_pairs: int = 0,
) -> set[Need]:
    """What this audit can offer attacks (see :class:`obfaudit.threat.Need`)."""
    have = {TRAFFIC, TRANSFORM}
    if known_pairs and train is not None and attribute in train.labels:
        have.add(KNOWN_PAIRS)
    if gradients:
        have.add(GRADIENTS)
    if train is not None:
        have.add(TRAIN)
    if attribute in test.labels:
        have.add(ATTRIBUTE)
    have |= {Need.proxy_named(n) for n, p in proxies.items() if attribute in p.labels}
    if proxies:
        have.add(ANY_PROXY)
    return have


class SubjectAudit:
    """The attacks on one transform (the subject), one at a time, each under its own party.

    The transform is checked and applied to the test images once (or the captured traffic
    is taken as it is), the knowledge of each party is built on first use and kept, so
    attacks of one party share what they observed (the transformed training split, the
    transformed proxies, a decoder the adversary trained). :meth:`run` runs one attack;
    its record and figure arrays accumulate in :attr:`result`.

    Args:
        subject: the transform's name in the results.
        transform: a module or callable mapping a batch of images to a batch of tensors.
        train: the original training split (the server's knowledge).
        test: the test split whose transformed images are attacked and scored.
        proxies: the adversary's proxy datasets by name ("noisy", "path").
        infnet: the clean InfNet, the judge of the task on reconstructions.
        attribute_judge: a clean attribute classifier, the judge of the attribute on them.
        config: the audit's settings.
        traffic: what was captured on the wire for ``test``'s images, row for row; attacked
            instead of ``transform`` applied to them (the live system's view).
    """

    def __init__(
        self,
        subject: str,
        transform: Transform,
        *,
        train: ImageSet | None,
        test: ImageSet,
        proxies: Mapping[str, ProxySet] | None = None,
        infnet: nn.Module | None = None,
        attribute_judge: nn.Module | None = None,
        config: AuditConfig | None = None,
        traffic: torch.Tensor | None = None,
    ) -> None:
        self.config = config = replace(config or AuditConfig(), label=f"{subject}: ")
        seed = config.seed
        self.train, self.test = train, test
        self.proxies = proxies = dict(proxies or {})
        self.device = device = str(resolve_device(config.device))
        self.transform = transform = CheckedTransform(to_device(transform, device), subject)
        torch.manual_seed(config.seed)  # a random transform draws the same noise for one seed
        if traffic is None:
            traffic = apply_transform(
                transform, test.x, device=device, progress=config.train.progress, desc=f"{subject}: transform"
            )
        elif len(traffic) != len(test):
            raise ValueError(f"{len(traffic)} captured tensors for {len(test)} test images")
        self.traffic = traffic
        self.scorer = Scorer(
            test,
            config.attribute,
            config.task,
            judge=infnet,
            attribute_judge=attribute_judge,
            device=device,
            samples=config.samples,
            seed=config.seed,
        )
        # the builders capture locals, never self: a cycle through self would keep every view a
        # party observed (the transformed proxies alone are 564 MB in the default preset) alive
        # until the cyclic garbage collector happened to run
        self._builders: dict[Party, Callable[[], object]] = {
            Party.SERVER: lambda: ServerKnowledge(transform, train, device, seed),
            Party.ADVERSARY: lambda: AdversaryKnowledge(
                transform,
                proxies,
                device,
                test.shape,
                seed,
                known=known_pairs(train, config.known_pairs, seed),
            ),
            Party.THIRD_PARTY: lambda: ThirdPartyKnowledge(traffic),
        }
        self._knowledge: dict[Party, object] = {}
        self._grads: bool | None = None
        self.result = AuditResult(subject)
        self.result.artifacts["originals"] = test.x[: config.samples]
        self.result.artifacts["transformed"] = traffic[: config.samples]

    @property
    def subject(self) -> str:
        return self.result.subject

    def set_judge(self, judge: nn.Module | None) -> None:
        """Read the attribute from reconstructions with ``judge`` (an attribute classifier trained on
        clean training images) from the next attack on."""
        self.scorer.attribute_judge = judge.to(self.device).eval() if judge is not None else None

    def available(self, *, gradients: bool) -> set[Need]:
        """What this audit offers attacks. Whether gradients flow through the transform is tried
        (one pass of two images) the first time an attack that needs them asks."""
        if gradients and self._grads is None:
            self._grads = differentiable(self.transform, self.test.x[:2].float().to(self.device))
        return available_needs(
            self.train,
            self.test,
            self.proxies,
            self.config.attribute,
            gradients=bool(self._grads),
            known_pairs=self.config.known_pairs,
        )

    def run(self, name: str) -> AttackRecord | None:
        """Run attack ``name`` (each of the config's repeats); its record, or None with the reason in
        ``result.skipped`` when its needs are not met."""
        config = self.config
        cls = attack_class(name)
        missing = cls.unmet(self.available(gradients=GRADIENTS in cls.needs))
        if missing:
            self.result.skipped[name] = why_unmet(missing)
            return None
        t0 = time.perf_counter()
        if cls.party not in self._knowledge:
            self._knowledge[cls.party] = self._builders[cls.party]()
        runs = range(config.repeats)
        done = []
        for r in runs:
            attack = cls(replace(config, seed=config.seed + r) if r else config)
            # what it draws from the global generator (a random transform's noise in an inversion's passes)
            # starts from its seed: the same whichever attacks ran before it in this process
            torch.manual_seed(attack.config.seed)
            try:
                fit = attack.fit(self._knowledge[cls.party])
            except NotApplicable as e:
                self.result.skipped[name] = str(e)
                return None
            done.append((fit, self.scorer.score(cls.output, attack.infer(self.traffic), self.traffic)))
        fit, score = done[0]
        if len(done) > 1:
            score.metrics["repeats"] = repeat_spread(
                [config.seed + r for r in runs], [s.metrics for _, s in done]
            )
        for key, value in score.artifacts.items():
            self.result.artifacts[f"{name}/{key}"] = value
        record = AttackRecord(
            subject=self.subject,
            attack=name,
            party=cls.party,
            output=cls.output,
            metrics=score.metrics,
            verdict=score.verdict,
            fit=fit,
            seconds=round(time.perf_counter() - t0, 3),
        )
        self.result.records.append(record)
        return record

    def run_all(self, on_attack: Callable[[str], None] | None = None) -> AuditResult:
        """Every configured attack in order (``on_attack(name)`` as each that can run starts)."""
        gradients = any(GRADIENTS in attack_class(a).needs for a in self.config.attacks)
        self.available(gradients=gradients)  # tried once, before any attack (a random transform's draws)
        for name in self.config.attacks:
            if on_attack and not attack_class(name).unmet(self.available(gradients=gradients)):
                on_attack(name)
            self.run(name)
        return self.result


def audit_transform(
    subject: str,
    transform: Transform,
    *,
    on_attack: Callable[[str], None] | None = None,
    **kwargs,
) -> AuditResult:
    """Run the configured attacks on ``transform`` in order and score them (``kwargs``: those of
    :class:`SubjectAudit`; ``on_attack`` is called with each attack's name as it starts)."""
    return SubjectAudit(subject, transform, **kwargs).run_all(on_attack)


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


__all__ = ["STUDY_ATTACKS", "AuditConfig", "AuditResult", "SubjectAudit", "attack_names", "audit_transform"]
