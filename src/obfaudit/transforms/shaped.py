"""The same-shape control: a transform that hides as little as a tensor of the subject's shape can.

The identity control checks an attack on the image itself; a subject sends another kind of
tensor (64 channels at a quarter of the resolution, one vector, one number), on which the same
attack trains another network, and an attack that rebuilds images from images can still fail on a
tensor of that shape. This control has the subject's output shape and keeps what a tensor of that
shape can keep, so the attacks are checked on the same kind of tensor as the subject's:

- where the shape holds at least as many values as the image, nothing is lost: the image is cut
  into k x k patches, each patch's values become the channels of one position
  (``pixel_unshuffle``), and the result is placed in the corner of a zero tensor (or, where no k
  fits the channels, the image's values in order, then zeros);
- where it holds fewer, a fixed linear map keeps the most it can: the principal components of
  the training images' patches (one output position reads one patch, as a pooled or strided
  tensor does) where the layout fits, else the principal components of whole images. Principal
  components are the linear map of that size that keeps the most of the images (least squared
  error, Eckart-Young); an attack blind through them is no evidence that a subject of that size
  hides anything.

Principal components come from the training images (at most :data:`PCA_IMAGES` of them), fixed
in sign, so two processes that build the control from the same images build the same one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: The control's name in an audit.
SAME_SHAPE = "same-shape"

#: The most training images the principal components are computed from.
PCA_IMAGES = 1024


def _patch(image: tuple[int, ...], out: tuple[int, ...]) -> int | None:
    """The smallest patch side k whose grid of positions fits ``out``'s spatial size, None where
    ``out`` is not a (C, H, W) tensor or no k fits."""
    if len(out) != 3 or len(image) != 3:
        return None
    _, h, w = image
    _, height, width = out
    for k in range(1, max(h, w) + 1):
        if math.ceil(h / k) <= height and math.ceil(w / k) <= width:
            return k
    return None


def _unshuffle(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` (n, c, h, w) zero-padded to multiples of ``k``, each k x k patch as the c*k*k channels
    of one position."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % k, 0, -h % k))
    return F.pixel_unshuffle(x, k) if k > 1 else x


def _components(x: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of the rows of ``x`` (n, d) and its top ``m`` principal directions (m, d), each
    with its largest entry positive; directions past the rank of ``x`` are zero. From the d x d
    covariance where rows outnumber columns (patches), else from the n x n Gram matrix (images)."""
    x = x.double()
    mean = x.mean(0)
    x = x - mean
    wide = x.shape[0] < x.shape[1]
    values, vectors = torch.linalg.eigh(x @ x.T if wide else x.T @ x)  # ascending
    keep = values.flip(0)[:m].clamp_min(0)
    vectors = vectors.flip(1)[:, :m]
    real = keep > values.max().clamp_min(1e-30) * 1e-10  # past the rank: no direction (any would do)
    if wide:  # the Gram's eigenvectors to the columns' directions, unit length
        vectors = x.T @ vectors * torch.where(real, keep.rsqrt(), torch.zeros_like(keep))
    else:
        vectors = vectors * real
    directions = vectors.T  # (m', d)
    sign = directions.gather(1, directions.abs().argmax(1, keepdim=True)).sign()
    directions = directions * torch.where(sign == 0, torch.ones_like(sign), sign)
    if len(directions) < m:
        directions = torch.cat([directions, directions.new_zeros(m - len(directions), x.shape[1])])
    return mean.float(), directions.float()


def _components_text(k: int) -> str:
    return "principal component" if k == 1 else f"{k} principal components"


@dataclass(frozen=True)
class Layout:
    """How the control fills a tensor of the subject's shape: ``kind`` is ``unshuffle`` (patches as
    channels, lossless), ``flat`` (the image's values in order, lossless), ``patch-pca`` or ``pca``."""

    kind: str
    patch: int = 1
    kept: int = 0
    """How many principal components (per position for patch-pca) it keeps."""

    @property
    def lossless(self) -> bool:
        return self.kind in ("unshuffle", "flat")

    def describe(self) -> str:
        return {
            "unshuffle": f"lossless: {self.patch}x{self.patch} patches as channels",
            "flat": "lossless: the image's values in order",
            "patch-pca": f"the top {_components_text(self.kept)} of each {self.patch}x{self.patch} patch",
            "pca": f"the top {_components_text(self.kept)} of the image",
        }[self.kind]


def layout(image: tuple[int, ...], out: tuple[int, ...]) -> Layout:
    """How a tensor of shape ``out`` keeps the most of an image of shape ``image``."""
    n, m = math.prod(image), math.prod(out)
    k = _patch(image, out)
    if k is not None:
        deep = image[0] * k * k
        if deep <= out[0]:
            return Layout("unshuffle", k)
        if m < n:
            return Layout("patch-pca", k, out[0])
    return Layout("flat") if m >= n else Layout("pca", kept=m)


class SameShapeControl(nn.Module):
    """Control: a tensor of the subject's output shape that hides nothing where that shape holds the
    image, else keeps its principal components (see the module's text). ``images``: the training
    images the components come from (unused when the layout is lossless)."""

    def __init__(self, image: tuple[int, ...], out: tuple[int, ...], images: torch.Tensor | None = None):
        super().__init__()
        self.image, self.out = tuple(image), tuple(out)
        self.layout = layout(self.image, self.out)
        mean, basis = torch.zeros(0), torch.zeros(0)
        if not self.layout.lossless:
            if images is None or not len(images):
                raise ValueError("the same-shape control keeps principal components: give training images")
            x = images[:PCA_IMAGES].float()
            if self.layout.kind == "patch-pca":
                x = _unshuffle(x, self.layout.patch)
                x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
                x = x[torch.linspace(0, len(x) - 1, min(len(x), 65536)).long()]  # enough for the basis
            else:
                x = x.reshape(len(x), -1)
            mean, basis = _components(x, self.layout.kept)
        self.register_buffer("mean", mean)
        self.register_buffer("basis", basis)

    def describe(self) -> str:
        return f"same-shape control {tuple(self.out)}: {self.layout.describe()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        kind = self.layout.kind
        if kind == "pca":
            z = (x.reshape(n, -1) - self.mean) @ self.basis.T
            return z.reshape(n, *self.out)
        if kind == "flat":
            z = x.reshape(n, -1)
            return F.pad(z, (0, math.prod(self.out) - z.shape[1])).reshape(n, *self.out)
        z = _unshuffle(x, self.layout.patch)
        if kind == "patch-pca":
            z = torch.einsum("nchw,kc->nkhw", z - self.mean[:, None, None], self.basis)
        c, h, w = z.shape[1:]
        channels, height, width = self.out
        return F.pad(z, (0, width - w, 0, height - h, 0, channels - c))


__all__ = ["PCA_IMAGES", "SAME_SHAPE", "Layout", "SameShapeControl", "layout"]
