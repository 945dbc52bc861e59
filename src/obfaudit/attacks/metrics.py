"""Privacy metrics: feature accuracy, the compromise threshold, verdicts, image quality."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from obfaudit.data import PALETTE_TENSOR
from obfaudit.records import COMPROMISED, NOT_COMPROMISED


def feature_accuracy(pred: torch.Tensor, true: torch.Tensor) -> float:
    """F_a = C / T: the share of images whose attribute the attack predicts correctly."""
    if len(true) == 0:
        raise ValueError("feature accuracy of an empty test set is undefined")
    if pred.shape != true.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(true.shape)} differ")
    return float((pred == true).sum()) / len(true)


def chance_level(k: int) -> float:
    """Accuracy of random guessing among ``k`` equally frequent classes."""
    if k < 2:
        raise ValueError(f"an attribute needs at least 2 values, got {k}")
    return 1.0 / k


def compromise_threshold(k: int) -> float:
    """The study's rule: twice chance, rounded up to the next ten percent (30% for k = 7).

    Computed exactly (k = 5 gives 40%, not 50% from float error). When twice chance
    reaches 100% (k = 2) the rule could never fire, so the threshold becomes the midpoint
    between chance and certainty (75% for k = 2); for k >= 3 the study's rule holds.
    """
    chance = Fraction(1, k) if k >= 2 else Fraction(chance_level(k))
    rule = Fraction(math.ceil(2 * chance * 10), 10)
    if rule >= 1:
        rule = (1 + chance) / 2
    return float(rule)


def verdict(score: float, k: int) -> str:
    """'compromised' when an attack's accuracy exceeds the threshold for ``k`` classes.

    A point estimate only; audits decide on the score's interval
    (:func:`obfaudit.attacks.uncertainty.interval_verdict`).
    """
    return COMPROMISED if score > compromise_threshold(k) else NOT_COMPROMISED


def attribute_summary(pred: torch.Tensor, true: torch.Tensor, k: int) -> dict:
    """F_a with its chance level and threshold."""
    return {
        "feature_accuracy": feature_accuracy(pred, true),
        "chance": chance_level(k),
        "threshold": compromise_threshold(k),
        "n_test": len(true),
    }


def read_colour(images: torch.Tensor) -> torch.Tensor:
    """The palette colour of each RGB image (n, 3, H, W), read without any training.

    The colour is the palette entry closest in direction (cosine) to the image's summed
    RGB intensity. It reads every clean Colored-MNIST image correctly, so on a
    reconstruction it measures how much of the colour came back.
    """
    rgb = images.float().clamp(min=0).sum(dim=(2, 3))
    rgb = rgb / rgb.norm(dim=1, keepdim=True).clamp(min=1e-8)
    palette = PALETTE_TENSOR / PALETTE_TENSOR.norm(dim=1, keepdim=True)
    return (rgb @ palette.T).argmax(dim=1)


def image_quality(recon: torch.Tensor, original: torch.Tensor, *, per_image: bool = False) -> dict:
    """Mean MSE, PSNR (dB) and SSIM of reconstructions against originals in [0, 1].

    PSNR and SSIM come from scikit-image (``peak_signal_noise_ratio``,
    ``structural_similarity``), computed per image with data range 1 and averaged; the
    PSNR of an exact reconstruction is infinite and left out of its mean. With
    ``per_image``, the per-image arrays are returned too (under ``"per_image"``).
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    r = recon.detach().float().clamp(0, 1).cpu().numpy()
    o = original.detach().float().cpu().numpy()
    if r.shape != o.shape:
        raise ValueError(f"reconstructions {r.shape} and originals {o.shape} differ in shape")
    mse = ((r - o) ** 2).reshape(len(r), -1).mean(axis=1)
    psnr, ssim = [], []
    for ri, oi in zip(r, o, strict=True):
        ri_hwc, oi_hwc = np.moveaxis(ri, 0, -1), np.moveaxis(oi, 0, -1)
        psnr.append(
            peak_signal_noise_ratio(oi_hwc, ri_hwc, data_range=1.0) if np.any(ri_hwc != oi_hwc) else np.inf
        )
        ssim.append(structural_similarity(oi_hwc, ri_hwc, data_range=1.0, channel_axis=-1))
    psnr_arr = np.asarray(psnr)
    finite = psnr_arr[np.isfinite(psnr_arr)]
    out = {
        "mse": float(mse.mean()),
        "psnr_db": float(finite.mean()) if len(finite) else math.inf,
        "ssim": float(np.mean(ssim)),
    }
    if per_image:
        out["per_image"] = {"mse": mse, "psnr_db": psnr_arr, "ssim": np.asarray(ssim)}
    return out
