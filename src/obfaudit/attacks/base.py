"""The attack contract: who runs it, what it needs, what it infers; ``fit`` then ``infer``.

An attack is fitted on the knowledge object of its party (:mod:`.knowledge`), then asked
to infer from the transformed test images (the traffic). It never sees a test label:
scoring is the scorer's job (:mod:`.scoring`), chosen by the attack's output kind.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch

from obfaudit.data import COLOUR
from obfaudit.threat import Need, NeedKind, Output, Party, unmet
from obfaudit.train_config import TrainConfig

__all__ = ["Attack", "AttackSettings", "NEEDS", "Need", "NotApplicable", "Output", "Party"]


class NotApplicable(Exception):
    """Raised by an attack's ``fit`` when what it does cannot apply to this transform (e.g. a reference
    inverse of a transform that has none); the auditor records the message as why it did not run."""


#: What an attack may declare in ``needs`` (as :class:`~obfaudit.threat.Need` objects or their
#: written form): ``proxy:NAME`` asks for one proxy dataset, ``proxy`` for any; ``gradients``
#: for a transform that gradients flow through.
NEEDS = ("train", "attribute", "traffic", "transform", "gradients", "proxy", "proxy:NAME", "known_pairs")


@dataclass
class AttackSettings:
    """What every attack reads: its training budgets, the labels it works on, seeds and device."""

    attribute: str = COLOUR
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
    label: str = ""
    """Prefix of progress bars and log lines (the auditor sets it to the subject's name)."""
    nets: str = "mlp"
    """The attack networks: mlp (the study's, everywhere), conv (convolutional for every spatial tensor) or
    auto (convolutional for spatial tensors above 3x32x32 values; :mod:`obfaudit.models.attack_nets`)."""
    known_pairs: int = 0
    """(image, sent tensor) pairs of the training split the adversary holds (0: none, the eavesdropper
    of the study); the known-pairs attacks train on them."""
    min_steps: int | None = None
    """Raise each attack network's epoch cap until it trains for at least this many steps (small data);
    None: the budgets as given (the study's)."""
    recon_side: int | None = None
    """Reconstruct images at most this many pixels a side (area-downsampled targets), upsampled back
    for scoring: the screening audit's cheap decoders. None: at full resolution."""

    def network(
        self,
        kind: str,
        input_shape: tuple[int, ...],
        n: int,
        config: TrainConfig,
        desc: str,
        *,
        nets: str | None = None,
        **kwargs: Any,
    ) -> tuple[torch.nn.Module, TrainConfig]:
        """A fresh ``kind`` network ("recnet" or "colornet") for inputs of ``input_shape``, seeded, and
        how to train it on ``n`` examples (``kwargs``: ``output_shape`` or ``classes``); ``nets``
        overrides :attr:`nets`."""
        from obfaudit.models.attack_nets import attack_network, attack_training, uses_conv

        nets = nets or self.nets
        cfg = replace(config, seed=self.seed, device=self.device, desc=desc)
        conv = uses_conv(tuple(input_shape), nets)
        cfg = attack_training(cfg, n, conv=conv, min_steps=self.min_steps)
        torch.manual_seed(cfg.seed)
        return attack_network(kind, tuple(input_shape), nets=nets, **kwargs), cfg

    def trained_network(
        self,
        kind: str,
        input_shape: tuple[int, ...],
        n: int,
        config: TrainConfig,
        desc: str,
        train: Callable[[torch.nn.Module, TrainConfig], Any],
        *,
        both: bool = True,
        score: Callable[[torch.nn.Module, TrainConfig], float | None] | None = None,
        **kwargs: Any,
    ) -> tuple[torch.nn.Module, dict]:
        """The ``kind`` network trained by ``train(net, config)`` (which returns a
        :class:`~obfaudit.train.FitResult`), and its fit statistics.

        Under ``auto``, where both an MLP and a convolutional network fit the tensor (a spatial one of
        at most :data:`~obfaudit.models.attack_nets.DENSE_LIMIT` values), both are trained and the
        stronger on the hold-out is kept (higher accuracy, then lower loss): no guess by size that
        could leave the weaker attack to speak for the transform. The fit lists both (``candidates``).
        ``both=False`` keeps the guess by size (networks trained on tens of thousands of proxy images).
        ``score(net, config)``: the trained network's hold-out score in what the audit reports (higher is
        stronger; a reconstructor's SSIM, which its training loss, MSE, can rank the other way, at the
        resolution it reconstructs), used instead of the hold-out loss when both candidates give one.
        Without a hold-out (``val_fraction`` 0 or no patience) the training loss decides, which favours
        the network that fits its training data best.
        """
        from obfaudit.models.attack_nets import both_fit, describe

        kinds = ("mlp", "conv") if both and both_fit(tuple(input_shape), self.nets) else (self.nets,)
        trained = []
        for nets in kinds:
            label = desc if len(kinds) == 1 else f"{desc} ({nets})"
            net, cfg = self.network(kind, input_shape, n, config, label, nets=nets, **kwargs)
            result = train(net, cfg)
            held = score(net, cfg) if score is not None and len(kinds) > 1 else None
            if held is not None and not math.isfinite(held):  # e.g. SSIM of images too small to score
                held = None
            trained.append((net, result, held))
        if all(t[2] is not None for t in trained):
            net, result, _ = max(trained, key=lambda t: t[2])
        else:
            net, result, _ = min(trained, key=lambda t: _hold_out_rank(t[1]))
        fit = {"network": describe(net), **result.to_dict()}
        if len(trained) > 1:
            fit["candidates"] = [
                {
                    "network": describe(m),
                    "val_loss": r.val_loss,
                    "val_metric": r.val_metric,
                    **({"val_score": held} if held is not None else {}),
                    "seconds": r.seconds,
                    "kept": m is net,
                }
                for m, r, held in trained
            ]
        return net, fit


def _hold_out_rank(result: Any) -> tuple[float, float]:
    """Sorts fits strongest first: the higher hold-out accuracy (classifiers), then the lower hold-out
    loss (the training loss where nothing was held out)."""
    metric = result.val_metric if result.val_metric is not None else 0.0
    loss = result.val_loss if math.isfinite(result.val_loss) else result.train_loss
    return (-metric, loss if math.isfinite(loss) else math.inf)


class Attack(ABC):
    """One attack. Subclass, set the class attributes, and decorate with ``@register_attack``.

    Class attributes:
        name: set by the registry from the decorator's argument.
        party: who runs it; the auditor hands ``fit`` only that party's knowledge.
        needs: what must be available for it to run (:class:`~obfaudit.threat.Need`, or its
            written form from :data:`NEEDS`): ``train`` (the server's training split),
            ``attribute`` (labels of the sensitive attribute), ``traffic``, ``transform``,
            ``proxy:NAME``. The registry turns them into Need objects.
        output: what ``infer`` returns, which picks the scorer.
        description: one line for ``--help`` and the report.
        slow: tens of seconds per transform on a CPU (trains on proxies, or optimises
            images); a reproduction preset may run such attacks on some ObfNets only.
        screening: cheap enough for a screening audit (``--budget quick``): seconds on a CPU at
            the screen's short budget. A screen runs only these.
        cost: its rough run time relative to an attribute classifier's (1), for executors that
            run several stages at once: the longest start first.
        starts_from: another attack of the same party whose trained network it starts from (its
            ``fit`` asks the party's knowledge for it, see ``derived``); an audit runs this one after
            it, on the same worker, so the network is trained once.
        both_kinds: where an MLP and a convolutional network both fit what it trains on, train both
            and keep the stronger (:meth:`AttackSettings.trained_network`); False keeps the guess by
            size (the networks trained on tens of thousands of proxy images, where both cost minutes).
    """

    name: ClassVar[str] = ""
    party: ClassVar[Party]
    needs: ClassVar[tuple[Need, ...]] = ()
    output: ClassVar[Output]
    description: ClassVar[str] = ""
    slow: ClassVar[bool] = False
    screening: ClassVar[bool] = False
    cost: ClassVar[float] = 1.0
    starts_from: ClassVar[str | None] = None
    both_kinds: ClassVar[bool] = True

    def __init__(self, config: AttackSettings) -> None:
        self.config = config

    def trained_network(
        self, kind: str, z: torch.Tensor, config: TrainConfig, train: Callable, **kwargs: Any
    ) -> tuple[torch.nn.Module, dict]:
        """This attack's ``kind`` network for the tensors ``z``, trained by ``train(net, config)``
        (:meth:`AttackSettings.trained_network` with this attack's shape, size, label and kinds)."""
        return self.config.trained_network(
            kind,
            tuple(z.shape[1:]),
            len(z),
            config,
            f"{self.config.label}{self.name}",
            train,
            both=self.both_kinds,
            **kwargs,
        )

    @abstractmethod
    def fit(self, knowledge: Any) -> dict:
        """Train on what the party knows; return fit statistics (plain JSON values)."""

    @abstractmethod
    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        """The attack's output for the transformed test images ``traffic``."""

    @classmethod
    def uses_transform(cls) -> bool:
        """Whether it needs the transform itself (an inversion, a reference inverse), not only what is
        sent: such an attack is calibrated by the identity, the others on the same-shape control too."""
        return any(n.kind is NeedKind.TRANSFORM for n in cls.needs)

    @classmethod
    def unmet(cls, available: set[Need]) -> list[Need]:
        """The declared needs that ``available`` does not cover (empty: it can run)."""
        return unmet(cls.needs, available)
