"""95% bootstrap confidence intervals over the test set, and verdicts that respect them.

Every score that is a mean over test images (F_a, an accuracy, SSIM, PSNR) gets a
percentile bootstrap interval: the test images are resampled with replacement
``resamples`` times (vectorised: one index matrix serves every metric of an attack) and
the 2.5th and 97.5th percentiles of the resampled means are the interval.

A verdict is *compromised* only when the interval's lower bound is above the line,
*not compromised* when its upper bound is below it, and *inconclusive* otherwise.
"""

from __future__ import annotations

import numpy as np

from obfaudit.records import COMPROMISED, INCONCLUSIVE, NOT_COMPROMISED

RESAMPLES = 1000
LEVEL = 0.95


class Bootstrap:
    """Resampling indices for ``n`` test images, drawn once and shared by every metric."""

    def __init__(self, n: int, *, resamples: int = RESAMPLES, seed: int = 0) -> None:
        self.n = n
        rng = np.random.default_rng(seed)
        self.index = rng.integers(0, n, size=(resamples, n), dtype=np.int32) if n else None

    def interval(self, values: np.ndarray, level: float = LEVEL) -> list[float] | None:
        """The percentile interval of the mean of per-image ``values`` (non-finite ones left out)."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.index is None or len(v) != self.n:
            return None
        finite = np.isfinite(v)
        if not finite.any():
            return None
        if finite.all():
            means = v[self.index].mean(axis=1)
        else:  # e.g. PSNR of identical images is infinite: the mean is over the finite ones
            w = finite[self.index]
            means = np.where(w, np.nan_to_num(v, posinf=0.0, neginf=0.0)[self.index], 0.0).sum(
                axis=1
            ) / np.maximum(w.sum(axis=1), 1)
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(means, [tail, 100 - tail])
        return [float(lo), float(hi)]


def pack_correct(correct: np.ndarray) -> str:
    """Per-image right/wrong as a hex string (a bit per test image): kept in results.json so that
    two audits of the same test images can be compared image by image (``obfaudit compare``)."""
    return np.packbits(np.asarray(correct, dtype=bool).reshape(-1)).tobytes().hex()


def unpack_correct(packed: str, n: int) -> np.ndarray:
    """The ``n`` per-image values :func:`pack_correct` stored, as 0.0/1.0."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8))[:n]
    return bits.astype(np.float64)


def interval_verdict(score: float, interval: list[float] | None, line: float) -> str:
    """compromised / not compromised / inconclusive from the interval (the score alone if none)."""
    lo, hi = interval if interval else (score, score)
    if lo > line:
        return COMPROMISED
    if hi < line:
        return NOT_COMPROMISED
    return INCONCLUSIVE


def spread(values: list[float]) -> dict:
    """Mean, standard deviation, minimum and maximum of one score over repeated runs."""
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if not len(a):
        return {"n": 0}
    return {
        "n": int(len(a)),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }
