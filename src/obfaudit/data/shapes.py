"""Shapes: a generated dataset at any image size, with a task and several attributes.

Each image is one shape (the task: circle, square, triangle or cross) at a jittered place
and scale, drawn in one hue (red, green, blue, yellow: a sensitive attribute) on a dark or
light background (another one), with a little noise. A fourth label, ``random``, is drawn
independently of the image: nothing can predict it, so an audit that calls it compromised
has found a false positive. Made offline and deterministically from the seed (train and
test from their own streams), at any size from 16 pixels up, so attacks can be tried where
users are (64x64, 128x128) and not only on the study's 28x28 digits.
"""

from __future__ import annotations

import torch

from obfaudit.data.base import ImageSet
from obfaudit.data.registry import DatasetSpec, register_dataset
from obfaudit.errors import DataError

SHAPES = ("circle", "square", "triangle", "cross")
HUES = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.1, 0.75, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
BACKGROUNDS = {"dark": 0.12, "light": 0.82}
RANDOM = ("a", "b")
DEFAULT_SIZE = 64
DEFAULT_COUNTS = {"train": 2000, "test": 500}


def _masks(shape: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """(n, size, size) masks of each image's shape at a random centre and scale."""
    n = len(shape)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    cy, cx = (torch.rand(2, n, 1, 1, generator=g) - 0.5) * 0.6
    r = 0.35 + 0.25 * torch.rand(n, 1, 1, generator=g)
    y, x = (yy - cy) / r, (xx - cx) / r
    masks = torch.stack(
        [
            x**2 + y**2 <= 1,  # circle
            (x.abs() <= 0.85) & (y.abs() <= 0.85),  # square
            (y <= 0.8) & (y >= -0.9 + 1.9 * x.abs()),  # triangle, apex up
            ((x.abs() <= 0.3) & (y.abs() <= 1)) | ((y.abs() <= 0.3) & (x.abs() <= 1)),  # cross
        ]
    )  # (4, n, size, size)
    return masks[shape, torch.arange(n)].float()


def make_shapes(n: int, *, seed: int, size: int = DEFAULT_SIZE, split: str = "train") -> ImageSet:
    """``n`` images of ``size`` x ``size`` pixels (RGB), labels shape, hue, background and random."""
    if size < 16:
        raise DataError(f"shapes are drawn at 16 pixels or more, not {size}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(len(SHAPES), (n,), generator=g)
    hue = torch.randint(len(HUES), (n,), generator=g)
    background = torch.randint(len(BACKGROUNDS), (n,), generator=g)
    random = torch.randint(len(RANDOM), (n,), generator=g)  # drawn, and never used to draw
    mask = _masks(shape, size, g).unsqueeze(1)  # (n, 1, H, W)
    colours = torch.tensor(list(HUES.values()))[hue].view(n, 3, 1, 1)
    level = torch.tensor(list(BACKGROUNDS.values()))[background].view(n, 1, 1, 1)
    x = mask * colours + (1 - mask) * level
    x = (x + 0.04 * torch.randn(n, 3, size, size, generator=g)).clamp_(0, 1)
    labels = {"shape": shape, "hue": hue, "background": background, "random": random}
    classes = {"shape": SHAPES, "hue": tuple(HUES), "background": tuple(BACKGROUNDS), "random": RANDOM}
    return ImageSet(x, labels, "shapes", split, classes)


def load_shapes(
    split: str,
    *,
    seed: int = 0,
    data_root=None,
    download: bool = False,
    n: int | None = None,
    size: int | None = None,
) -> ImageSet:
    """The train or test split (2,000 and 500 images unless ``n``), each from its own seeded stream."""
    if split not in DEFAULT_COUNTS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    count = DEFAULT_COUNTS[split] if n is None else n
    stream = seed * 2 + (split == "test") + 104729  # apart from every other generator's streams
    return make_shapes(count, seed=stream, size=size or DEFAULT_SIZE, split=split)


register_dataset(
    DatasetSpec(
        "shapes",
        load_shapes,
        "generated shapes (the task) in 4 hues on a dark or light background, at any --size (default 64), "
        "with a random attribute nothing can predict (a false-positive control)",
        task="shape",
        attributes=("hue", "background", "random"),
        trainable=True,
        sized=True,
    )
)

__all__ = ["BACKGROUNDS", "HUES", "SHAPES", "load_shapes", "make_shapes"]
