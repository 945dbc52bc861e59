"""Figures as PNG files (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from obfaudit._io import atomic_write_bytes  # noqa: E402


def _save(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def to_display(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, 3) array in [0, 1]; each image scaled by its own maximum
    when it leaves [0, 1] (obfuscated outputs are unbounded above)."""
    x = x.detach().float().cpu()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] != 3:
        x = x[:3] if x.shape[0] > 3 else torch.cat([x, x[-1:].expand(3 - x.shape[0], -1, -1)])
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / max(hi - lo, 1e-8)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def image_rows(
    rows: Sequence[torch.Tensor],
    path: str | Path,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell: float = 0.75,
) -> Path:
    """A grid whose rows are batches of images (n, C, H, W), one image per cell."""
    nrows = len(rows)
    ncols = max(len(r) for r in rows)
    label_w = 1.6 if row_labels else 0.0
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * cell + label_w, nrows * cell + (0.5 if title else 0.1)),
        squeeze=False,
    )
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(row):
                ax.imshow(to_display(row[j]), interpolation="nearest")
            if i == 0 and col_labels and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=7)
        if row_labels:
            axes[i][0].set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return _save(fig, path)


def sample_grid(
    x: torch.Tensor, path: str | Path, *, labels: Sequence[str] | None = None,
    ncols: int = 10, title: str | None = None,
) -> Path:
    """A plain grid of samples with an optional caption under each (``data show``)."""
    n = len(x)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.9, nrows * 1.05), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(to_display(x[k]), interpolation="nearest")
            if labels:
                ax.set_title(labels[k], fontsize=6, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
