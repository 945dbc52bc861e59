"""The attack contract: who runs it, what it needs, what it infers; ``fit`` then ``infer``.

An attack is fitted on the knowledge object of its party (:mod:`.knowledge`), then asked
to infer from the transformed test images (the traffic). It never sees a test label:
scoring is the scorer's job (:mod:`.scoring`), chosen by the attack's output kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from obfaudit.attacks.audit import AuditConfig


class Party(StrEnum):
    """Who runs an attack (SPEC section 1)."""

    SERVER = "server"
    """Honest-but-curious server: the transform and the original training data."""
    ADVERSARY = "adversary"
    """Eavesdropper: the transform, the traffic and self-made proxy data, never the training data."""
    THIRD_PARTY = "third-party"
    """Trusted-third-party case: the transform is private; only transformed data is seen."""


class Output(StrEnum):
    """What an attack infers, which decides how it is scored."""

    IMAGE = "image"
    """Reconstructed images, scored by MSE/PSNR/SSIM and what a judge reads from them."""
    ATTRIBUTE = "attribute"
    """One predicted attribute class per image, scored by feature accuracy F_a."""
    EMBEDDING = "embedding"
    """A low-dimensional embedding, scored by how well neighbours share the attribute."""


#: What an attack may declare in ``needs``. ``proxy:NAME`` asks for one proxy dataset,
#: ``proxy`` for any; ``gradients`` for a transform that gradients flow through.
NEEDS = ("train", "attribute", "traffic", "transform", "gradients", "proxy", "proxy:NAME")


class Attack(ABC):
    """One attack. Subclass, set the class attributes, and decorate with ``@register_attack``.

    Class attributes:
        name: set by the registry from the decorator's argument.
        party: who runs it; the auditor hands ``fit`` only that party's knowledge.
        needs: what must be available for it to run, from :data:`NEEDS`:
            ``train`` (the server's training split), ``attribute`` (labels of the
            sensitive attribute), ``traffic``, ``transform``, ``proxy:NAME``.
        output: what ``infer`` returns, which picks the scorer.
        description: one line for ``--help`` and the report.
        slow: tens of seconds per transform on a CPU (trains on proxies, or optimises
            images); a reproduction preset may run such attacks on some ObfNets only.
    """

    name: ClassVar[str] = ""
    party: ClassVar[Party]
    needs: ClassVar[tuple[str, ...]] = ()
    output: ClassVar[Output]
    description: ClassVar[str] = ""
    slow: ClassVar[bool] = False

    def __init__(self, config: AuditConfig) -> None:
        self.config = config

    @abstractmethod
    def fit(self, knowledge: Any) -> dict:
        """Train on what the party knows; return fit statistics (plain JSON values)."""

    @abstractmethod
    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        """The attack's output for the transformed test images ``traffic``."""

    @classmethod
    def unmet(cls, available: set[str]) -> list[str]:
        """The declared needs that ``available`` does not cover (empty: it can run)."""
        return [n for n in cls.needs if n not in available]
