"""Photos: random crops of the natural photographs that scikit-image ships, at any size, offline.

Published attacks are scored on natural images (CelebA, CIFAR-10, FFHQ), whose textures, edges
and colours flat generated images lack. scikit-image (a dependency) bundles a dozen RGB
photographs in ``skimage/data``; eight are natural, distinct scenes: an astronaut, a cat
(chelsea), a cup of coffee, the Hubble deep field, a stained tissue section (ihc), a motorcycle,
a retina and a rocket. Each image of this dataset is a square crop of one of them, of a random
side between 15% and 30% of the photograph's shorter side at a random place, resized to
``size`` pixels (area averaging when shrinking). The task is which photograph the crop comes
from (``scene``, 8 classes); the sensitive attributes are properties of the crop itself:
``brightness`` (dark or light: its mean luminance below or above the median of its split, so
the two are balanced) and ``warmth`` (cool or warm: red minus blue, likewise), and ``random``,
drawn apart from the image (a false-positive control, as in :mod:`.shapes`). Training crops come
from the left 70% of each photograph and test crops from the right 30%: no test pixel is ever
seen in training. Deterministic for a seed.
"""

from __future__ import annotations

import functools
from importlib import resources

import torch
import torch.nn.functional as F

from obfaudit.data.base import ImageSet
from obfaudit.data.registry import DatasetSpec, register_dataset
from obfaudit.errors import DataError

PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
SCENES = tuple(p.split(".")[0] for p in PHOTOS)
BRIGHTNESS = ("dark", "light")
WARMTH = ("cool", "warm")
RANDOM = ("a", "b")
#: The share of each photograph's width, on its right, that test crops come from (and training crops never).
TEST_SHARE = 0.3
#: A crop's side as a share of the photograph's shorter side.
SIDES = (0.15, 0.30)
DEFAULT_SIZE = 64
DEFAULT_COUNTS = {"train": 2000, "test": 500}


@functools.cache
def photograph(name: str) -> torch.Tensor:
    """One of scikit-image's bundled photographs as (3, H, W) floats in [0, 1]."""
    import numpy as np
    from PIL import Image

    path = resources.files("skimage") / "data" / name
    try:
        with resources.as_file(path) as file, Image.open(file) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (FileNotFoundError, OSError) as e:
        raise DataError(
            f"scikit-image's photograph {name} cannot be read ({e}); reinstall scikit-image"
        ) from None
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


@functools.cache
def _photograph_for(name: str, size: int) -> torch.Tensor:
    """The photograph shrunk (area averaging) until its smallest crop is ``size`` pixels a side: the
    same crops, resampled once instead of from every full-resolution crop (2.5 ms a crop, 0.3 ms)."""
    image = photograph(name)
    shorter = min(image.shape[1:])
    want = int(size / SIDES[0]) + 1
    if shorter <= want:
        return image
    scale = want / shorter
    hw = (round(image.shape[1] * scale), round(image.shape[2] * scale))
    return F.interpolate(image[None], size=hw, mode="area")[0]


def _box(h: int, w: int, split: str, g: torch.Generator) -> tuple[int, int, int]:
    """(top, left, side) of a square crop of an ``h`` x ``w`` photograph, inside its split's part."""
    edge = int(w * (1 - TEST_SHARE))
    start, end = (0, edge) if split == "train" else (edge, w)
    lo, hi = SIDES
    side = int(min(h, w) * (lo + (hi - lo) * float(torch.rand((), generator=g))))
    side = max(8, min(side, end - start, h))
    top = int(torch.randint(h - side + 1, (), generator=g))
    left = start + int(torch.randint(end - start - side + 1, (), generator=g))
    return top, left, side


def _crop(image: torch.Tensor, split: str, size: int, g: torch.Generator) -> torch.Tensor:
    top, left, side = _box(image.shape[1], image.shape[2], split, g)
    crop = image[None, :, top : top + side, left : left + side]
    mode = {"mode": "area"} if side >= size else {"mode": "bilinear", "align_corners": False}
    return F.interpolate(crop, size=(size, size), **mode)[0]


def _above_median(values: torch.Tensor) -> torch.Tensor:
    """1 where a value is above its split's median, else 0: two balanced classes (the lower half first)."""
    order = torch.argsort(values, stable=True)
    labels = torch.zeros(len(values), dtype=torch.long)
    labels[order[len(values) // 2 :]] = 1
    return labels


def make_photos(n: int, *, seed: int, size: int = DEFAULT_SIZE, split: str = "train") -> ImageSet:
    """``n`` crops of ``size`` x ``size`` pixels from the split's part of each photograph, with their
    scene, brightness, warmth and random labels."""
    if size < 16:
        raise DataError(f"photo crops are made at 16 pixels or more, not {size}")
    if split not in DEFAULT_COUNTS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    g = torch.Generator().manual_seed(seed)
    scene = torch.randint(len(PHOTOS), (n,), generator=g)
    random = torch.randint(len(RANDOM), (n,), generator=g)  # drawn, and never used to crop
    x = torch.empty(n, 3, size, size)
    for i, k in enumerate(scene.tolist()):
        x[i] = _crop(_photograph_for(PHOTOS[k], size), split, size, g)
    x.clamp_(0, 1)
    luminance = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean(dim=(1, 2))
    warmth = (x[:, 0] - x[:, 2]).mean(dim=(1, 2))
    labels = {
        "scene": scene,
        "brightness": _above_median(luminance),
        "warmth": _above_median(warmth),
        "random": random,
    }
    classes = {"scene": SCENES, "brightness": BRIGHTNESS, "warmth": WARMTH, "random": RANDOM}
    return ImageSet(x, labels, "photos", split, classes)


def load_photos(
    split: str,
    *,
    seed: int = 0,
    data_root=None,
    download: bool = False,
    n: int | None = None,
    size: int | None = None,
) -> ImageSet:
    """The train or test split (2,000 and 500 crops unless ``n``), each from its own seeded stream."""
    if split not in DEFAULT_COUNTS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    count = DEFAULT_COUNTS[split] if n is None else n
    stream = seed * 2 + (split == "test") + 130363  # apart from every other generator's streams
    return make_photos(count, seed=stream, size=size or DEFAULT_SIZE, split=split)


register_dataset(
    DatasetSpec(
        "photos",
        load_photos,
        "crops of 8 natural photographs bundled with scikit-image at any --size (default 64): the task is "
        "which photograph, the attributes the crop's brightness and warmth (and a random one nothing can "
        "predict); test crops from a part of each photograph training never sees",
        task="scene",
        attributes=("brightness", "warmth", "random"),
        trainable=True,
        sized=True,
    )
)

__all__ = ["PHOTOS", "SCENES", "load_photos", "make_photos", "photograph"]
