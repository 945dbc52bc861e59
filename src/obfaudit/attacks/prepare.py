"""One audit, prepared in one place: the data and proxies, the attacks' settings, the
baselines, the controls and the judge (:class:`PreparedAudit`).

``obfaudit audit`` (on data or on captured traffic, :mod:`obfaudit.audit.resolve`) and the
reproduction (:mod:`obfaudit.study.context`) both build their audits here, and both run them
through the audit engine's stages (:mod:`obfaudit.audit.plan`), so an audit means the same thing
wherever it runs: the same training budgets, the same control transforms drawn with the same
seeds, the same baselines beside the scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from obfaudit._io import check_fits_in_memory, fingerprint, resolve_device
from obfaudit.attacks.auditor import (
    AuditConfig,
    AuditResult,
    SubjectAudit,
    available_needs,
    differentiable,
)
from obfaudit.attacks.base import AttackSettings
from obfaudit.attacks.judge import train_attribute_judge
from obfaudit.attacks.metrics import chance_level, compromise_threshold
from obfaudit.attacks.registry import attack_class, attack_names
from obfaudit.data import ImageSet, ProxySet, load_proxy, proxy_names, proxy_spec
from obfaudit.errors import ObfauditError
from obfaudit.threat import GRADIENTS, PARTIES, Need, Output, Party, why_unmet
from obfaudit.train_config import TrainConfig
from obfaudit.transforms import CONTROLS, CheckedTransform, Transform, to_device

#: The random-weights control draws its weights from its own stream, apart from the data's.
RANDOM_WEIGHTS_SEED_OFFSET = 7919


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class AttackBudget:
    """How hard the attack networks train (the same budget for every attack of an audit)."""

    epochs: int = 15
    """Epochs of the networks trained on the training split."""
    patience: int | None = 2
    """Early stopping on a 10% hold-out of their data (None or 0: every epoch, all the data)."""
    proxy_epochs: int | None = None
    """Epochs of the networks trained on proxies (30,000 images each); None: a third, at least 1."""
    proxy_patience: int | None = 1
    precision: str = "bf16"
    nets: str = "mlp"
    """mlp (the study's attack networks), conv or auto (:mod:`obfaudit.models.attack_nets`)."""
    min_steps: int | None = None
    """Raise the epoch cap of small data until each network takes this many steps; None: as given."""
    recon_side: int | None = None
    """Reconstruct at most this many pixels a side, upsampled for scoring; None: full resolution."""

    def train_configs(
        self, *, seed: int, device: str, progress: bool = False
    ) -> tuple[TrainConfig, TrainConfig]:
        """(training on the training split, training on proxies)."""

        def config(epochs: int, patience: int | None) -> TrainConfig:
            return TrainConfig(
                epochs=epochs,
                seed=seed,
                device=device,
                precision=self.precision,
                patience=patience,
                val_fraction=0.1 if patience else 0.0,
                progress=progress,
            )

        proxy_epochs = self.proxy_epochs if self.proxy_epochs is not None else max(1, self.epochs // 3)
        return config(self.epochs, self.patience), config(proxy_epochs, self.proxy_patience)


def audit_config(
    attacks: tuple[str, ...],
    *,
    attribute: str,
    task: str,
    budget: AttackBudget,
    seed: int,
    device: str,
    tsne_points: int,
    tsne_backend: str = "opentsne",
    repeats: int = 1,
    progress: bool = False,
    known_pairs: int = 0,
) -> AuditConfig:
    """The settings of an audit's attacks, from the budget every audit shares."""
    train, proxy_train = budget.train_configs(seed=seed, device=device, progress=progress)
    return AuditConfig(
        attacks=attacks,
        attribute=attribute,
        task=task,
        train=train,
        proxy_train=proxy_train,
        tsne_points=tsne_points,
        tsne_backend=tsne_backend,
        seed=seed,
        device=device,
        repeats=repeats,
        nets=budget.nets,
        min_steps=budget.min_steps,
        recon_side=budget.recon_side,
        known_pairs=known_pairs,
    )


def config_settings(config: AuditConfig) -> dict:
    """The settings of ``config`` that decide its scores (for stage keys and records)."""
    return {
        "attacks": list(config.attacks),
        "attribute": config.attribute,
        "train": config.train.to_dict(),
        "proxy_train": config.proxy_train.to_dict(),
        "tsne_points": config.tsne_points,
        "perplexity": config.perplexity,
        **network_settings(config),
        **({"known_pairs": config.known_pairs} if config.known_pairs else {}),
    }


def network_settings(config: AttackSettings) -> dict:
    """Which attack networks and how long they train, where not the study's (whose stage keys and
    records stay as they were before the setting existed)."""
    out: dict = {}
    if config.nets != "mlp":
        out["nets"] = config.nets
    if config.nets == "auto":  # both kinds where both fit, the stronger kept: other networks than before
        out["where_both_fit"] = "stronger of both"
    if config.min_steps:
        out["min_steps"] = config.min_steps
    if config.recon_side:
        out["recon_side"] = config.recon_side
    return out


@dataclass(frozen=True)
class AuditBudget:
    """How much an audit spends, by name (``obfaudit audit --budget``): the attack networks' training,
    the adversary's proxy images, the t-SNE's points and which attacks run."""

    name: str
    epochs: int
    min_steps: int
    patience: int
    proxy_epochs: int | None
    n_proxy: int
    n_tsne: int
    recon_side: int | None = None
    screen: bool = False
    """A screen runs only the attacks marked ``screening``, briefly: it can find a leak but not rule one
    out, so it never says *not compromised*."""
    about: str = ""

    def attack_budget(self, nets: str) -> AttackBudget:
        """How hard the attack networks of ``nets`` train under this budget."""
        return AttackBudget(
            epochs=self.epochs,
            patience=self.patience,
            proxy_epochs=self.proxy_epochs,
            proxy_patience=1,
            nets=nets,
            min_steps=self.min_steps or None,
            recon_side=self.recon_side,
        )


#: ``standard`` (the default) is the full audit; ``quick`` a screen of about a minute on a small folder.
BUDGETS = {
    "standard": AuditBudget(
        "standard",
        epochs=15,
        min_steps=1000,
        patience=2,
        proxy_epochs=None,
        n_proxy=30_000,
        n_tsne=1000,
        about="every applicable attack, each network trained for at least 1,000 steps",
    ),
    "quick": AuditBudget(
        "quick",
        epochs=5,
        min_steps=250,
        patience=1,
        proxy_epochs=2,
        n_proxy=5_000,
        n_tsne=500,
        recon_side=16,
        screen=True,
        about="the cheap attacks only (probes, attribute classifiers, t-SNE, decoders at 16 pixels a "
        "side), each network trained for 5 epochs or 250 steps, 5,000 images per generated proxy",
    ),
}


def screen_adds(budget: AuditBudget, left_out: Iterable[str], *, generated_proxies: bool) -> list[str]:
    """What a standard audit adds to the screen ``budget``: the attacks it left out, longer training,
    more proxy images, full-resolution reconstructions, and the power to rule a leak out."""
    full = BUDGETS["standard"]
    adds = []
    if left_out:
        adds.append(f"the attacks a screen leaves out: {', '.join(left_out)}")
    adds.append(
        f"attack networks trained for {full.epochs} epochs or {full.min_steps:,} steps, whichever is more "
        f"(the screen: {budget.epochs} and {budget.min_steps:,})"
    )
    if generated_proxies:
        adds.append(f"{full.n_proxy:,} images per generated proxy (the screen: {budget.n_proxy:,})")
    if budget.recon_side:
        adds.append(f"reconstructions at full resolution (the screen: {budget.recon_side} pixels a side)")
    adds.append(
        "a verdict of not compromised, when every attack's interval lies below the line and a control that "
        "hides nothing calibrates at least one of them"
    )
    return adds


# ----------------------------------------------------------------------------- data


def make_proxies(
    wanted: Iterable[str] | None,
    *,
    attribute: str,
    test: ImageSet,
    seed: int,
    n: int | None = None,
    private: str | Path | None = None,
) -> dict[str, ProxySet]:
    """The adversary's own data: generated proxies by name (``noisy``, ``path``: each seeded apart
    from the data, seed + 1 + its place) or folders of its own images. ``wanted`` None: every
    generated proxy of the attribute, when the data has its shape."""
    from obfaudit.data.attributes import load_proxy_folder

    generated = proxy_names(attribute)
    if wanted is None:
        wanted = generated if all(proxy_spec(p).shape == test.shape for p in generated) else ()
    out: dict[str, ProxySet] = {}
    for i, name in enumerate(wanted):
        if name in proxy_names():
            spec = proxy_spec(name)
            if spec.attribute != attribute or spec.shape != test.shape:
                c, h, w = spec.shape
                raise ObfauditError(
                    f"--proxy {name} makes {h}x{w} images for the {spec.attribute} attribute; give a folder"
                )
            count = spec.default_n if n is None else n
            check_fits_in_memory(proxy_bytes(count, spec.shape), f"--n-proxy {count}")
            # the data's own order of the attribute's values (a folder's is alphabetical)
            out[name] = load_proxy(name, seed=seed + 1 + i, n=count).relabel(
                attribute, test.classes[attribute]
            )
        else:
            out["folder"] = load_proxy_folder(
                name, attribute=attribute, classes=test.classes[attribute], shape=test.shape, private=private
            )
    return out


def proxy_bytes(n: int, shape: tuple[int, int, int] = (3, 28, 28), copies: int = 3) -> int:
    """Memory of ``n`` generated proxy images counted as float32 ``copies`` times (the images,
    their transform, a training copy): an upper bound, the images are bytes."""
    c, h, w = shape
    return n * c * h * w * 4 * copies


def data_fingerprint(data: ImageSet | None) -> str | None:
    if data is None:
        return None
    return fingerprint(
        data.x, *(data.labels[k] for k in sorted(data.labels)), extra=sorted(data.classes.items())
    )


# ----------------------------------------------------------------------------- baselines, controls


@dataclass(frozen=True)
class Baselines:
    """What a guess of the attribute scores without looking, and the line a score must clear."""

    attribute: str
    classes: tuple[str, ...]
    chance: float
    majority_class: float
    threshold: float

    def to_dict(self) -> dict:
        return {
            "attribute": self.attribute,
            "classes": list(self.classes),
            "chance": self.chance,
            "majority_class": self.majority_class,
            "threshold": self.threshold,
        }


def baselines(test: ImageSet, attribute: str) -> Baselines:
    """Chance, the majority class and the compromise line of ``attribute`` on ``test``."""
    y = test.labels[attribute]
    k = len(test.classes[attribute])
    return Baselines(
        attribute=attribute,
        classes=tuple(test.classes[attribute]),
        chance=chance_level(k),
        majority_class=float(torch.bincount(y, minlength=k).max()) / len(y),
        threshold=compromise_threshold(k),
    )


def random_weights(arch: str, kwargs: Mapping, seed: int) -> nn.Module:
    """The same architecture as a trained obfuscator, with random weights: what training added."""
    from obfaudit.models import create_model

    torch.manual_seed(seed + RANDOM_WEIGHTS_SEED_OFFSET)
    return create_model(arch, **dict(kwargs))


def control_transforms(
    *, seed: int, random: Mapping[str, tuple[str, Mapping]] | None = None, skip: Iterable[str] = ()
) -> dict[str, Callable[[], Transform]]:
    """The controls audited beside a subject, each made when called: identity (sends the image),
    null (sends zeros) and, for each ``name -> (arch, kwargs)`` of ``random``, that architecture
    with random weights."""
    skipped = set(skip)
    out: dict[str, Callable[[], Transform]] = {n: make for n, make in CONTROLS.items() if n not in skipped}
    for name, (arch, kwargs) in (random or {}).items():
        out[name] = lambda arch=arch, kwargs=kwargs: random_weights(arch, kwargs, seed)
    return out


# ----------------------------------------------------------------------------- the audit


@dataclass
class PreparedAudit:
    """Everything an audit of one dataset and attribute needs, built once.

    ``traffic`` (captured tensors of ``test``'s images, row for row) and ``parties`` (who saw
    them) describe an audit of captured traffic; an audit of a transform has neither.
    """

    train: ImageSet | None
    test: ImageSet
    attribute: str
    task: str
    proxies: dict[str, ProxySet]
    config: AuditConfig
    infnet: nn.Module | None = None
    traffic: torch.Tensor | None = None
    parties: tuple[Party, ...] = PARTIES

    @property
    def baselines(self) -> Baselines:
        return baselines(self.test, self.attribute)

    @property
    def needs_judge(self) -> bool:
        """An attribute judge reads reconstructions: trained only when an image attack runs."""
        return self.attribute in self.test.labels and any(
            attack_class(a).output is Output.IMAGE for a in self.config.attacks
        )

    def train_judge(self) -> nn.Module:
        """An attribute classifier trained on the clean training images (the server's knowledge):
        what it reads from a reconstruction is what the reconstruction reveals."""
        if self.train is None:
            raise ObfauditError("an attribute judge trains on the training images, and this audit has none")
        return train_attribute_judge(self.train, self.attribute, self.config)

    def available(self, transform: Transform) -> set[Need]:
        """What this audit offers attacks on ``transform`` (whether gradients flow through it is
        tried on two test images)."""
        device = str(resolve_device(self.config.device))
        checked = CheckedTransform(to_device(transform, device), "transform")
        grads = differentiable(checked, self.test.x[:2].to(device))
        return available_needs(
            self.train,
            self.test,
            self.proxies,
            self.attribute,
            gradients=grads,
            known_pairs=self.config.known_pairs,
        )

    def choose_attacks(
        self,
        requested: tuple[str, ...] | None,
        available: set[Need],
        name: str,
        *,
        no_gradients: str | None = None,
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        """The attacks to run: those asked for (of a party that saw the data), else every registered
        one whose needs this audit meets; and, then, every other registered attack with the reason it
        does not run (so "not compromised" is never "not tested" in silence). Refused before any
        training when none could give a verdict. ``no_gradients``: why the transform passes no
        gradients, added to the reasons of the attacks that need them."""

        def why(unmet: list[Need]) -> str:
            text = why_unmet(unmet)
            return f"{text} (this transform: {no_gradients})" if no_gradients and GRADIENTS in unmet else text

        requested = tuple(dict.fromkeys(requested)) if requested else None  # each attack once
        for a in requested or ():
            party = attack_class(a).party
            if party not in self.parties:
                raise ObfauditError(
                    f"--attack {a} is a {party} attack; this capture is seen by {', '.join(self.parties)}"
                )
        not_run: dict[str, str] = {}
        if requested is None:
            for a in attack_names():
                cls = attack_class(a)
                if cls.party not in self.parties:
                    not_run[a] = f"a {cls.party} attack; this capture is seen by {', '.join(self.parties)}"
                elif cls.unmet(available):
                    not_run[a] = why(cls.unmet(available))
        attacks = requested or tuple(a for a in attack_names() if a not in not_run)
        unmet = {a: attack_class(a).unmet(available) for a in attacks}
        not_run.update({a: why(u) for a, u in unmet.items() if u})  # asked for, and cannot run
        if all(unmet.values()):
            reasons = "; ".join(f"{a}: {why(u)}" for a, u in unmet.items()) or "no attack applies"
            raise ObfauditError(
                f"no attack can run on {name} for {self.attribute!r}, so there is no verdict ({reasons})"
            )
        return attacks, not_run

    def subject(
        self, name: str, transform: Transform, *, judge: nn.Module | None = None, traffic: bool = False
    ) -> SubjectAudit:
        """The auditor of one transform on this data; ``traffic`` attacks the captured tensors."""
        return SubjectAudit(
            name,
            transform,
            train=self.train,
            test=self.test,
            proxies=self.proxies,
            infnet=self.infnet,
            attribute_judge=judge,
            config=self.config,
            traffic=self.traffic if traffic else None,
        )

    def audit(
        self, name: str, transform: Transform, *, judge: nn.Module | None = None, **kwargs
    ) -> AuditResult:
        """Every configured attack on one transform, in order (``kwargs``: ``traffic`` as for
        :meth:`subject`, ``on_attack`` as for :meth:`SubjectAudit.run_all`)."""
        traffic = kwargs.pop("traffic", False)
        return self.subject(name, transform, judge=judge, traffic=traffic).run_all(**kwargs)


def needs_gradients(attacks: Iterable[str]) -> bool:
    return any(GRADIENTS in attack_class(a).needs for a in attacks)


__all__ = [
    "AttackBudget",
    "AuditBudget",
    "BUDGETS",
    "Baselines",
    "PreparedAudit",
    "audit_config",
    "baselines",
    "config_settings",
    "network_settings",
    "control_transforms",
    "data_fingerprint",
    "fingerprint",
    "make_proxies",
    "proxy_bytes",
    "random_weights",
    "screen_adds",
]
