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


#: scikit-image's SSIM defaults (Wang et al. 2004 with a uniform window): window, K1, K2.
SSIM_WINDOW, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03


def ssim_per_image(recon: np.ndarray, original: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """SSIM of each image pair of two (n, C, H, W) arrays, averaged over channels.

    The computation of scikit-image's ``structural_similarity`` (uniform 7x7 window, sample
    covariance, reflected borders, a 3-pixel border left out of the mean, channels averaged),
    done on the whole batch at once: 1,000 Colored-MNIST images took 0.57 s one by one through
    scikit-image here and 0.27 s together (with PSNR and MSE). Tests hold it to scikit-image's
    values.
    """
    from scipy.ndimage import uniform_filter

    if recon.shape != original.shape or recon.ndim != 4:
        raise ValueError(
            f"SSIM needs two (n, C, H, W) arrays of one shape, got {recon.shape}, {original.shape}"
        )
    x, y = recon.astype(np.float32, copy=False), original.astype(np.float32, copy=False)
    size = (1, 1, SSIM_WINDOW, SSIM_WINDOW)  # filter each image plane, never across images
    ux, uy = uniform_filter(x, size), uniform_filter(y, size)
    uxx, uyy, uxy = uniform_filter(x * x, size), uniform_filter(y * y, size), uniform_filter(x * y, size)
    n = SSIM_WINDOW**2
    cov = n / (n - 1)
    vx, vy, vxy = cov * (uxx - ux * ux), cov * (uyy - uy * uy), cov * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW - 1) // 2
    return s[:, :, pad:-pad, pad:-pad].mean(axis=(2, 3), dtype=np.float64).mean(axis=1)


def image_quality(recon: torch.Tensor, original: torch.Tensor, *, per_image: bool = False) -> dict:
    """Mean MSE, PSNR (dB) and SSIM of reconstructions against originals in [0, 1].

    PSNR and SSIM are scikit-image's (``peak_signal_noise_ratio``, ``structural_similarity``
    with data range 1; :func:`ssim_per_image` computes the latter for the whole batch), per
    image and averaged; the PSNR of an exact reconstruction is infinite and left out of its
    mean. With ``per_image``, the per-image arrays are returned too (under ``"per_image"``).
    """
    r = recon.detach().float().clamp(0, 1).cpu().numpy()
    o = original.detach().float().cpu().numpy()
    if r.shape != o.shape:
        raise ValueError(f"reconstructions {r.shape} and originals {o.shape} differ in shape")
    if r.ndim == 3:  # (n, H, W): one channel
        r, o = r[:, None], o[:, None]
    mse = ((o.astype(np.float64) - r) ** 2).reshape(len(r), -1).mean(axis=1)
    psnr_arr = np.full(len(mse), np.inf)  # an exact reconstruction's PSNR is infinite
    psnr_arr[mse > 0] = 10 * np.log10(1.0 / mse[mse > 0])
    ssim = ssim_per_image(r, o)
    finite = psnr_arr[np.isfinite(psnr_arr)]
    out = {
        "mse": float(mse.mean()),
        "psnr_db": float(finite.mean()) if len(finite) else math.inf,
        "ssim": float(np.mean(ssim)),
    }
    if per_image:
        out["per_image"] = {"mse": mse, "psnr_db": psnr_arr, "ssim": ssim}
    return out
