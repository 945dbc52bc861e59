"""Colored-MNIST and the adversary's proxy datasets (Noisy, Path)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from obfaudit.data.base import COLOUR, COLOUR_NAMES, PALETTE_TENSOR, ImageSet, ProxySet, balanced_labels
from obfaudit.data.registry import ProxySpec, register_proxy

DEFAULT_PROXY_SIZE = 30_000


def colorize(gray: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Multiply grey images (n, 1, H, W) by one palette colour each -> (n, 3, H, W)."""
    return gray * PALETTE_TENSOR[colours].view(-1, 3, 1, 1)


def make_colored(mnist: ImageSet, *, seed: int) -> ImageSet:
    """Colored-MNIST: every MNIST image times one palette colour, colours balanced to ±1."""
    g = torch.Generator().manual_seed(seed)
    colours = balanced_labels(len(mnist), len(COLOUR_NAMES), g)
    return ImageSet(
        colorize(mnist.x, colours),
        {"digit": mnist.labels["digit"], COLOUR: colours},
        "colored-mnist",
        mnist.split,
        {**mnist.classes, COLOUR: COLOUR_NAMES},
    )


def make_noisy(n: int = DEFAULT_PROXY_SIZE, *, seed: int, size: int = 28) -> ImageSet:
    """Noisy: uniform noise whose intensity grows towards the centre, one palette colour each."""
    g = torch.Generator().manual_seed(seed)
    colours = balanced_labels(n, len(COLOUR_NAMES), g)
    c = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = torch.sqrt((yy - c) ** 2 + (xx - c) ** 2) / (c * np.sqrt(2))
    # Linear falloff: 1 at the centre, 0 at the corners.
    falloff = (1.0 - r).clamp_(min=0.0)
    gray = torch.rand(n, 1, size, size, generator=g) * falloff
    return ProxySet(colorize(gray, colours), {COLOUR: colours}, "noisy", "proxy", {COLOUR: COLOUR_NAMES})


def random_walks(
    n: int, steps: int, *, seed: int, size: int = 28, step: float = 1.0, turn: float = 0.5
) -> np.ndarray:
    """Random walks from the image centre: (n, steps + 1, 2) float (row, col) positions.

    The first direction is uniform; each later step turns by a normal angle with standard
    deviation ``turn`` (radians), which draws pen-like strokes rather than a tight knot.
    Positions stay inside the image with a margin so strokes are not cut at the border.
    """
    rng = np.random.default_rng(seed)
    heading = rng.uniform(0, 2 * np.pi, size=(n, 1)) + np.cumsum(
        rng.normal(0.0, turn, size=(n, steps)), axis=1
    )
    moves = step * np.stack([np.sin(heading), np.cos(heading)], axis=-1)
    start = np.full((n, 1, 2), (size - 1) / 2)
    walk = np.concatenate([start, start + np.cumsum(moves, axis=1)], axis=1)
    margin = 3.0
    return np.clip(walk, margin, size - 1 - margin)


def draw_strokes(walks: np.ndarray, *, size: int = 28, width: float = 0.8) -> torch.Tensor:
    """Rasterise polylines into (n, 1, size, size) images in [0, 1] with a soft pen.

    Each segment is sampled densely and splatted bilinearly, then blurred (the pen); a
    saturating curve maps one pass of the pen to about 0.9, so crossings do not dim the rest.
    """
    n = len(walks)
    samples = 4
    t = np.linspace(0.0, 1.0, samples, endpoint=False)
    seg = walks[:, :-1, None, :] + (walks[:, 1:, None, :] - walks[:, :-1, None, :]) * t[:, None]
    pts = np.concatenate([seg.reshape(n, -1, 2), walks[:, -1:, :]], axis=1)
    canvas = np.zeros((n, size, size), dtype=np.float32)
    r0 = np.floor(pts[..., 0]).astype(np.int64)
    c0 = np.floor(pts[..., 1]).astype(np.int64)
    fr = (pts[..., 0] - r0).astype(np.float32)
    fc = (pts[..., 1] - c0).astype(np.float32)
    img = np.broadcast_to(np.arange(n)[:, None], r0.shape)
    for dr, dc, w in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        rr = np.clip(r0 + dr, 0, size - 1)
        cc = np.clip(c0 + dc, 0, size - 1)
        np.add.at(canvas, (img, rr, cc), w)
    canvas = gaussian_filter(canvas, sigma=(0, width, width))
    step = np.linalg.norm(np.diff(walks, axis=1), axis=-1).mean() or 1.0
    line_peak = (samples / step) / (np.sqrt(2 * np.pi) * width)
    canvas = 1.0 - np.exp(-2.5 * canvas / line_peak)
    return torch.from_numpy(canvas.astype(np.float32)).unsqueeze(1)


def make_path(n: int = DEFAULT_PROXY_SIZE, *, seed: int, steps: int = 40, size: int = 28) -> ImageSet:
    """Path: a handwriting-like random-walk stroke from the centre, one palette colour each."""
    g = torch.Generator().manual_seed(seed)
    colours = balanced_labels(n, len(COLOUR_NAMES), g)
    gray = draw_strokes(random_walks(n, steps, seed=seed, size=size), size=size)
    return ProxySet(colorize(gray, colours), {COLOUR: colours}, "path", "proxy", {COLOUR: COLOUR_NAMES})


register_proxy(
    ProxySpec(
        "noisy",
        lambda n, *, seed: make_noisy(n, seed=seed).as_uint8(),
        attribute=COLOUR,
        shape=(3, 28, 28),
        description="uniform noise brighter towards the centre, in one palette colour each",
        default_n=DEFAULT_PROXY_SIZE,
    )
)
register_proxy(
    ProxySpec(
        "path",
        lambda n, *, seed: make_path(n, seed=seed).as_uint8(),
        attribute=COLOUR,
        shape=(3, 28, 28),
        description="random pen strokes, in one palette colour each",
        default_n=DEFAULT_PROXY_SIZE,
    )
)
