"""Registries of the built-in datasets and of the adversary's generated proxies.

A dataset is registered with what it carries: the task label a classifier learns, the
sensitive attributes, whether obfaudit trains InfNets and ObfNets on it, and which
proxies an adversary can generate for each attribute. Commands, presets and the audit
read these entries instead of naming datasets, so a new built-in dataset is one module
with a :func:`register_dataset` call (imported by :mod:`obfaudit.data`) and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from obfaudit.errors import ObfauditError

if TYPE_CHECKING:
    from obfaudit.data.base import ImageSet, ProxySet


@dataclass(frozen=True)
class DatasetSpec:
    """One built-in dataset and what it carries."""

    name: str
    load: Callable[..., ImageSet]
    """``load(split, *, seed, data_root, download)``: the train or test split."""
    description: str
    task: str | None = None
    """The label a task model (InfNet) learns, e.g. digit; None for proxies."""
    attributes: tuple[str, ...] = ()
    """The sensitive attributes its images carry, e.g. colour."""
    trainable: bool = False
    """``obfaudit train`` and the reproduction's sweep train InfNets and ObfNets on it."""
    needs_root: bool = False
    """It reads a folder given as --data-root."""
    sized: bool = False
    """It is generated at any image size: ``load`` takes ``size`` (pixels per side)."""

    @property
    def labels(self) -> tuple[str, ...]:
        return ((self.task,) if self.task else ()) + self.attributes


@dataclass(frozen=True)
class ProxySpec:
    """Adversary data an eavesdropper can make itself, for one attribute and image shape."""

    name: str
    make: Callable[..., ProxySet]
    """``make(n, *, seed)``: n generated images with the attribute's labels."""
    attribute: str
    shape: tuple[int, int, int]
    description: str
    default_n: int = 30_000


#: Filled by the modules that define the built-ins; importing this module imports the package
#: first, and :mod:`obfaudit.data` imports every one of them.
_DATASETS: dict[str, DatasetSpec] = {}
_PROXIES: dict[str, ProxySpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _DATASETS and _DATASETS[spec.name] != spec:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    _DATASETS[spec.name] = spec
    return spec


def register_proxy(spec: ProxySpec) -> ProxySpec:
    if spec.name in _PROXIES and _PROXIES[spec.name] != spec:
        raise ValueError(f"proxy {spec.name!r} is registered twice")
    _PROXIES[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a dataset (for tests that register a temporary one)."""
    _DATASETS.pop(name, None)


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return _DATASETS[name]
    except KeyError:
        raise ObfauditError(f"unknown dataset {name!r}; choose from {', '.join(dataset_names())}") from None


def dataset_names(*, trainable: bool | None = None, attribute: str | None = None) -> tuple[str, ...]:
    """Registered datasets (and proxies, which ``data`` commands show too), optionally filtered."""
    out = [
        n
        for n, s in _DATASETS.items()
        if (trainable is None or s.trainable == trainable)
        and (attribute is None or attribute in s.attributes)
    ]
    return tuple(out)


def proxy_spec(name: str) -> ProxySpec:
    try:
        return _PROXIES[name]
    except KeyError:
        raise ObfauditError(f"unknown proxy {name!r}; choose from {', '.join(proxy_names())}") from None


def proxy_names(attribute: str | None = None) -> tuple[str, ...]:
    """The generated proxies (of ``attribute``, if given), in registration order."""
    return tuple(n for n, s in _PROXIES.items() if attribute is None or s.attribute == attribute)


__all__ = [
    "DatasetSpec",
    "ProxySpec",
    "dataset_names",
    "dataset_spec",
    "proxy_names",
    "proxy_spec",
    "register_dataset",
    "register_proxy",
]
