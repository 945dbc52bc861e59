"""The in-memory dataset type every generator and loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

#: The study's palette, in the order of its text; index = colour label.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "aqua": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "white": (1.0, 1.0, 1.0),
}
COLOUR_NAMES: tuple[str, ...] = tuple(PALETTE)
#: The palette attribute: the study's sensitive attribute (Colored-MNIST's, and its proxies').
COLOUR = "colour"
PALETTE_TENSOR = torch.tensor(list(PALETTE.values()), dtype=torch.float32)  # (7, 3)


@dataclass(frozen=True)
class ImageSet:
    """Images (n, C, H, W) with their labels: float32 in [0, 1], or uint8 (0-255, see
    :meth:`as_uint8`), which every consumer reads through :func:`obfaudit.train.as_float`.

    ``source`` names where the images come from ("mnist", "colored-mnist", "noisy", ...)
    and ``split`` which part ("train", "test", "proxy"). Attacks use both to enforce the
    threat model: an adversary may never receive a split of the private dataset.
    """

    x: torch.Tensor
    labels: dict[str, torch.Tensor]
    source: str
    split: str
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must be (n, C, H, W), got shape {tuple(self.x.shape)}")
        for name, y in self.labels.items():
            if len(y) != len(self.x):
                raise ValueError(f"label {name!r} has {len(y)} entries for {len(self.x)} images")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one image, (C, H, W)."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return f"{self.source}/{self.split}"

    def as_uint8(self) -> ImageSet:
        """The same set with its images stored as bytes (values rounded to 1/255 steps).

        A quarter of the memory: the adversary's two 30,000-image proxy sets take 141 MB
        instead of 564 MB.
        """
        if self.x.dtype == torch.uint8:
            return self
        return replace(self, x=self.x.clamp(0, 1).mul(255).round_().to(torch.uint8))

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        """The same set (and type) restricted to ``index``."""
        return replace(self, x=self.x[index], labels={k: v[index] for k, v in self.labels.items()})

    def relabel(self, label: str, classes: tuple[str, ...]) -> ImageSet:
        """The same set with ``label`` indexing ``classes`` (another dataset's order of the same
        values), so that predictions trained on one are scored on the other's labels."""
        own = self.classes[label]
        unknown = sorted(set(own) - set(classes))
        if unknown:
            raise ValueError(f"{self.name}: {label} values {unknown} are not among {', '.join(classes)}")
        mapping = torch.tensor([classes.index(c) for c in own])
        return replace(
            self,
            labels={**self.labels, label: mapping[self.labels[label]]},
            classes={**self.classes, label: tuple(classes)},
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class, for every label."""
        out: dict[str, dict[str, int]] = {}
        for name, y in self.labels.items():
            names = self.classes.get(name)
            k = len(names) if names else int(y.max()) + 1 if len(y) else 0
            bins = torch.bincount(y, minlength=k).tolist()
            out[name] = {(names[i] if names else str(i)): c for i, c in enumerate(bins)}
        return out


@dataclass(frozen=True)
class ProxySet(ImageSet):
    """Images an adversary made itself (e.g. Noisy, Path): the only data it may train on.

    The threat model is enforced by this type: the adversary's knowledge accepts only
    ``ProxySet`` instances, and no loader of private data (MNIST, Colored-MNIST, image
    folders) returns one.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split != "proxy":
            raise ValueError(f"a proxy set has the split 'proxy', not {self.split!r}")


def balanced_labels(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` labels in ``range(k)``, each used n // k or n // k + 1 times, in seeded order."""
    labels = torch.arange(n) % k
    # Which classes get the extra image is part of the shuffle, not always the first ones.
    offset = int(torch.randint(k, (1,), generator=generator))
    labels = (labels + offset) % k
    return labels[torch.randperm(n, generator=generator)]
