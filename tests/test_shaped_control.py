"""The same-shape control: a tensor of the subject's shape that hides nothing where the shape holds the
image, else keeps the most a fixed linear map of that size can."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from obfaudit.data import load_dataset
from obfaudit.transforms.shaped import SameShapeControl, layout

IMAGE = (3, 32, 32)


@pytest.fixture(scope="module")
def images():
    return load_dataset("shapes", split="train", n=200, size=32).x


def _undo(control: SameShapeControl, z: torch.Tensor) -> torch.Tensor:
    """The image back from a lossless control's tensor, written from the layout alone."""
    c, h, w = control.image
    if control.layout.kind == "flat":
        return z.flatten(1)[:, : c * h * w].reshape(len(z), c, h, w)
    k = control.layout.patch
    deep, rows, cols = c * k * k, math.ceil(h / k), math.ceil(w / k)
    return F.pixel_shuffle(z[:, :deep, :rows, :cols], k)[:, :, :h, :w]


@pytest.mark.parametrize(
    "out, kind",
    [((64, 16, 16), "unshuffle"), ((256, 4, 4), "unshuffle"), ((3, 40, 40), "unshuffle"),
     ((48, 10, 10), "unshuffle"), ((3072,), "flat"), ((5000,), "flat"), ((2, 48, 40), "flat")],
)  # fmt: skip
def test_where_the_shape_holds_the_image_the_control_keeps_every_pixel(images, out, kind):
    control = SameShapeControl(IMAGE, out)
    z = control(images[:7])
    assert control.layout.kind == kind and control.layout.lossless and tuple(z.shape[1:]) == out
    assert torch.equal(_undo(control, z), images[:7])


def _kept(z: torch.Tensor, x: torch.Tensor) -> float:
    """The squared error of the best linear read-back of ``x`` from ``z`` (least squares on these images)."""
    a = torch.cat([z.flatten(1), torch.ones(len(z), 1)], 1).double()
    coef = torch.linalg.lstsq(a, x.flatten(1).double()).solution
    return float(((a @ coef - x.flatten(1).double()) ** 2).mean())


@pytest.mark.parametrize("out", [(3, 8, 8), (48,), (192, 1, 1)])
def test_a_smaller_shape_keeps_at_least_what_pooling_to_that_size_keeps(images, out):
    """Principal components keep the most a linear map of their size can: at least as much of the
    training images as 4x4 average pooling (48 values per 3x8x8 block layout, 192 = 3x8x8 in all)."""
    control = SameShapeControl(IMAGE, out, images)
    assert not control.layout.lossless
    z = control(images)
    assert tuple(z.shape[1:]) == out
    pooled = F.avg_pool2d(images, 4 if math.prod(out) == 192 else 16)  # the pool with as many values
    assert pooled[0].numel() <= math.prod(out)
    assert _kept(z, images) <= _kept(pooled, images) + 1e-6


def test_one_number_per_image_is_the_first_principal_component(images):
    control = SameShapeControl(IMAGE, (1,), images)
    z = control(images)
    assert control.layout.kind == "pca" and z.shape == (len(images), 1) and float(z.std()) > 0
    assert "the top principal component of the image" in control.describe()


def test_the_same_images_build_the_same_control(images):
    a, b = SameShapeControl(IMAGE, (3, 8, 8), images), SameShapeControl(IMAGE, (3, 8, 8), images.clone())
    assert torch.equal(a(images[:5]), b(images[:5]))
    with pytest.raises(ValueError, match="give training images"):
        SameShapeControl(IMAGE, (3, 8, 8))


def test_layouts_for_a_resnets_cuts_at_64():
    image = (3, 64, 64)
    assert layout(image, (64, 32, 32)).kind == "unshuffle"  # layer1: 2x2 patches, 12 of 64 channels
    assert layout(image, (256, 8, 8)).kind == "unshuffle"  # layer3: 8x8 patches, 192 of 256
    assert layout(image, (512, 4, 4)) == layout(image, (512, 4, 4)) and layout(image, (512, 4, 4)).kept == 512
    assert layout(image, (1000,)).kind == "pca"


def test_directions_past_the_rank_of_the_images_are_zero():
    """Patches that all lie on one line have one principal direction: the others are zero, not whatever
    vectors a linear-algebra library returns for a zero eigenvalue (two processes must build one control)."""
    x = torch.linspace(0, 1, 40)[:, None, None, None] * torch.ones(
        1, 3, 8, 8
    )  # every patch a multiple of one
    control = SameShapeControl((3, 8, 8), (3, 4, 4), x)
    assert control.layout.kind == "patch-pca"
    assert float(control.basis[0].norm()) == pytest.approx(1.0) and float(control.basis[1:].abs().max()) == 0
