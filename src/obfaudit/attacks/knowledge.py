"""What each party knows, as types: an attack is handed only its own party's object.

- :class:`ServerKnowledge`: the transform (public) and the original training split.
- :class:`AdversaryKnowledge`: the transform (public) and the proxy data it generated
  itself (:class:`~obfaudit.data.ProxySet`), never a private split; with ``--known-pairs K``
  also K private training images with what was sent for them (the stolen-pairs adversary).
- :class:`ThirdPartyKnowledge`: only transformed tensors.

Each knowledge object has its own :class:`~obfaudit.transforms.Observer`, which keeps
transformed tensors only. The test split and its labels live in the scorer alone.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

import torch

from obfaudit.attacks.base import Party
from obfaudit.data import ImageSet, ProxySet
from obfaudit.errors import ThreatModelError
from obfaudit.train import as_float
from obfaudit.transforms import Observer, Transform

T = TypeVar("T")


class _Derived:
    """What a party made from its knowledge alone (a decoder, a RecNet), made once and shared with its
    other attacks on the same subject: ``inversion-decoder`` starts from the eavesdropper's decoder,
    ``inversion-recnet`` from the server's RecNet."""

    _derived: dict

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``'s result, made the first time ``key`` is asked for."""
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def has_derived(self, key: Hashable) -> bool:
        return key in self._derived


@dataclass(frozen=True)
class ServerKnowledge(_Derived):
    """The honest-but-curious server: the transform and the original training split."""

    transform: Transform
    train: ImageSet
    device: str = "cpu"
    seed: int | None = None
    """Seeds the transform's draws for each view (a random transform)."""
    party = Party.SERVER
    _observer: Observer = field(init=False, repr=False)
    _derived: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.train, ProxySet):
            raise ThreatModelError("the server's knowledge is the original training split, not a proxy")
        object.__setattr__(self, "_observer", Observer(self.transform, device=self.device, seed=self.seed))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image."""
        return tuple(self.train.shape)

    def observed_train(self) -> torch.Tensor:
        """The transform of the training images (computed once)."""
        return self._observer("train", self.train.x)


@dataclass(frozen=True)
class AdversaryKnowledge(_Derived):
    """The eavesdropper: the public transform and proxy data it made; nothing private.

    Only :class:`~obfaudit.data.ProxySet` instances are accepted: the loaders of the
    private data never return one, so a private split cannot be handed over by mistake.
    """

    transform: Transform
    proxies: Mapping[str, ProxySet]
    device: str = "cpu"
    input_shape: tuple[int, int, int] | None = None
    """The shape of one input image: public, like the transform that takes it."""
    seed: int | None = None
    """Seeds the transform's draws for each view (a random transform)."""
    known: ImageSet | None = None
    """Private images it got hold of with what was sent for each (``--known-pairs K``: K training
    images and their attribute, never test images); None for the study's eavesdropper."""
    party = Party.ADVERSARY
    _observer: Observer = field(init=False, repr=False)
    _derived: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for name, data in self.proxies.items():
            if not isinstance(data, ProxySet):
                raise ThreatModelError(
                    f"the adversary may not hold {getattr(data, 'name', name)}: it never has the original "
                    "training data, only proxy data it generates (e.g. noisy, path)"
                )
        object.__setattr__(self, "proxies", MappingProxyType(dict(self.proxies)))
        object.__setattr__(self, "_observer", Observer(self.transform, device=self.device, seed=self.seed))

    def proxy(self, name: str) -> ProxySet:
        try:
            return self.proxies[name]
        except KeyError:
            raise ThreatModelError(f"the adversary has no {name!r} proxy data") from None

    def observed_proxy(self, name: str) -> torch.Tensor:
        """The transform of proxy ``name``'s images (a view of :meth:`observed_proxies`)."""
        n = len(self.proxy(name))  # an unknown name is refused
        names = sorted(self.proxies)
        start = sum(len(self.proxies[other]) for other in names[: names.index(name)])
        return self.observed_proxies()[start : start + n]

    def observed_proxies(self) -> torch.Tensor:
        """The transforms of every proxy's images, in the order of their sorted names, as one
        tensor computed once: the attacks that pool the proxies take it without another copy."""
        return self._observer("proxies", self.proxy_images)

    def proxy_images(self) -> torch.Tensor:
        """Every proxy's images in the order of their sorted names, as one tensor: bytes when
        all are stored as bytes (generated proxies), else floats in [0, 1] (a folder's too)."""
        xs = [self.proxies[n].x for n in sorted(self.proxies)]
        if all(x.dtype == torch.uint8 for x in xs):
            return torch.cat(xs)
        return torch.cat([as_float(x) for x in xs])

    def known_pairs(self) -> tuple[torch.Tensor, ImageSet]:
        """The sent tensors of the pairs it holds, and the images with their labels."""
        if self.known is None:
            raise ThreatModelError("this adversary holds no (image, sent tensor) pairs: give --known-pairs K")
        return self._observer("known", self.known.x), self.known


@dataclass(frozen=True)
class ThirdPartyKnowledge:
    """The trusted-third-party case: transformed tensors only; no images, labels or transform."""

    traffic: torch.Tensor
    party = Party.THIRD_PARTY


Knowledge = ServerKnowledge | AdversaryKnowledge | ThirdPartyKnowledge
KNOWLEDGE_TYPES: dict[Party, type] = {
    Party.SERVER: ServerKnowledge,
    Party.ADVERSARY: AdversaryKnowledge,
    Party.THIRD_PARTY: ThirdPartyKnowledge,
}


def expect(knowledge: object, party: Party, attack: str) -> None:
    """Refuse knowledge of another party than ``attack``'s own."""
    expected = KNOWLEDGE_TYPES[party]
    if not isinstance(knowledge, expected):
        raise ThreatModelError(
            f"{attack} runs as the {party}: it takes {expected.__name__}, not {type(knowledge).__name__}"
        )
