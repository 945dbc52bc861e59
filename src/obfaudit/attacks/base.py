"""The attack contract: parties, what each party knows, transforms and the observer.

Every attack is fitted on what its party knows (:class:`ServerKnowledge` or
:class:`AdversaryKnowledge`) as seen through the transform, then asked to infer from the
transformed test images. Scoring against the true labels is the auditor's job
(:mod:`obfaudit.attacks.audit`), never the attack's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from obfaudit.data import ImageSet
from obfaudit.errors import ThreatModelError
from obfaudit.train import as_float

#: A transformation under audit: any callable from a batch of images to a batch of tensors.
Transform = Callable[[torch.Tensor], torch.Tensor]

#: Sources whose splits are private: the data the obfuscator protects.
PRIVATE_SOURCES = frozenset({"mnist", "colored-mnist", "imagefolder"})


class Party(StrEnum):
    """Who runs an attack (SPEC section 1)."""

    SERVER = "server"
    """Honest-but-curious server: the transform and the original training data."""
    ADVERSARY = "adversary"
    """Eavesdropper: the transform, the traffic and self-made proxy data, never the training data."""
    THIRD_PARTY = "third-party"
    """Trusted-third-party case: the transform is private; only transformed data is seen."""


@dataclass(frozen=True)
class ServerKnowledge:
    """The server holds the original training split."""

    train: ImageSet
    party = Party.SERVER

    @property
    def data(self) -> ImageSet:
        return self.train


@dataclass(frozen=True)
class AdversaryKnowledge:
    """The adversary holds only proxy data it generated; a private split is refused."""

    proxy: ImageSet
    party = Party.ADVERSARY

    def __post_init__(self) -> None:
        if self.proxy.source in PRIVATE_SOURCES or self.proxy.split != "proxy":
            raise ThreatModelError(
                f"the adversary may not hold {self.proxy.name}: it never has the original "
                "training data, only proxy data it generates (e.g. noisy, path)"
            )

    @property
    def data(self) -> ImageSet:
        return self.proxy


Knowledge = ServerKnowledge | AdversaryKnowledge


class IdentityTransform(nn.Module):
    """Control: sends the image itself (leaks everything)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NullTransform(nn.Module):
    """Control: sends zeros of the same shape (keeps nothing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


CONTROLS: dict[str, Callable[[], nn.Module]] = {
    "identity": IdentityTransform,
    "null": NullTransform,
}


@torch.no_grad()
def apply_transform(
    transform: Transform,
    x: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
) -> torch.Tensor:
    """``transform`` applied to every image of ``x`` in batches; float32 on the CPU."""
    if isinstance(transform, nn.Module):
        transform.eval()
    out = []
    for i in range(0, len(x), batch_size):
        z = transform(as_float(x[i : i + batch_size].to(device)))
        if not isinstance(z, torch.Tensor) or len(z) != len(x[i : i + batch_size]):
            raise ValueError("a transform must map a batch of n images to a batch of n tensors")
        out.append(z.detach().float().cpu())
    return torch.cat(out)


class Observer:
    """What a party sees: the transform applied to a dataset, computed once and remembered."""

    def __init__(self, transform: Transform, *, device: str | torch.device = "cpu") -> None:
        self.transform = transform
        self.device = device
        self._seen: dict[int, tuple[ImageSet, torch.Tensor]] = {}

    def __call__(self, data: ImageSet) -> torch.Tensor:
        key = id(data)
        if key not in self._seen:
            self._seen[key] = (data, apply_transform(self.transform, data.x, device=self.device))
        return self._seen[key][1]


class Attack(ABC):
    """One attack: ``fit`` on its party's knowledge, then ``infer`` from transformed images."""

    name: str
    party: Party

    @abstractmethod
    def fit(self, observe: Observer, knowledge: Any) -> dict:
        """Train on what the party knows, seen through ``observe``; return fit statistics."""

    @abstractmethod
    def infer(self, z: torch.Tensor) -> torch.Tensor:
        """The attack's output for transformed images ``z``."""
