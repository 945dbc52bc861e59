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
        nrows,
        ncols,
        figsize=(ncols * cell + label_w, nrows * cell + (0.5 if title else 0.1)),
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
    height = fig.get_figheight()
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height)
    # A fixed margin in inches for the title: the default (a fraction of the height)
    # leaves a wide blank band above tall figures such as fig8.
    fig.subplots_adjust(wspace=0.05, hspace=0.05, top=1 - (0.45 if title else 0.05) / height)
    return _save(fig, path)


def sample_grid(
    x: torch.Tensor,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    ncols: int = 10,
    title: str | None = None,
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


def _palette_rgb() -> list[tuple[float, float, float]]:
    from obfaudit.data import PALETTE

    # White points are drawn light grey with an edge so they show on a white background.
    return [(0.8, 0.8, 0.8) if c == (1.0, 1.0, 1.0) else c for c in PALETTE.values()]


def tsne_figure(
    emb: np.ndarray, digit: np.ndarray, colour: np.ndarray, path: str | Path, *, title: str = ""
) -> Path:
    """Two panels of one t-SNE: points coloured by digit, and by their true colour."""
    from obfaudit.data import COLOUR_NAMES

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 5.2))
    cmap = plt.get_cmap("tab10")
    a.scatter(emb[:, 0], emb[:, 1], c=[cmap(d % 10) for d in digit], s=5, linewidths=0)
    rgb = np.array(_palette_rgb())
    b.scatter(emb[:, 0], emb[:, 1], c=rgb[colour], s=6, edgecolors=(0, 0, 0, 0.25), linewidths=0.2)
    for ax in (a, b):
        for d in np.unique(digit):
            cx, cy = np.median(emb[digit == d], axis=0)
            ax.text(
                cx,
                cy,
                str(d),
                fontsize=12,
                weight="bold",
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0},
            )
        ax.set_xticks([])
        ax.set_yticks([])
    a.set_title("coloured by digit (numbers: digit centres)", fontsize=9)
    b.set_title("coloured by the image's true colour", fontsize=9)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, label=n)
        for c, n in zip(rgb, COLOUR_NAMES, strict=True)
    ]
    b.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def fa_bars(
    rows: Sequence[dict], path: str | Path, *, chance: float, threshold: float, title: str = ""
) -> Path:
    """Feature accuracy per (subject, attack) with the chance and compromise lines."""
    labels = [f"{r['subject']}\n{r['attack']}" for r in rows]
    values = [100 * r["feature_accuracy"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(4, 0.75 * len(rows) + 1.5), 3.6))
    colours = ["#c0392b" if v > 100 * threshold else "#2e86c1" for v in values]
    ax.bar(range(len(rows)), values, color=colours)
    ax.axhline(100 * chance, color="grey", ls=":", label=f"chance {100 * chance:.1f}%")
    ax.axhline(100 * threshold, color="black", ls="--", label=f"compromised above {100 * threshold:.0f}%")
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("feature accuracy F_a (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def fa_vs_bottleneck(
    series: dict[str, tuple[Sequence[int], Sequence[float]]],
    path: str | Path,
    *,
    chance: float,
    threshold: float,
    title: str = "",
    reference: dict[str, tuple[Sequence[int], Sequence[float]]] | None = None,
) -> Path:
    """F_a (%) against bottleneck N (log2 axis), one line per series, chance and threshold."""
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for name, (ns, fas) in series.items():
        ax.plot(ns, [100 * f for f in fas], marker="o", label=name)
    for name, (ns, fas) in (reference or {}).items():
        ax.plot(ns, [100 * f for f in fas], marker="x", ls="--", alpha=0.6, label=name)
    ax.axhline(100 * chance, color="grey", ls=":", label=f"chance {100 * chance:.1f}%")
    ax.axhline(100 * threshold, color="black", ls="--", label=f"compromised above {100 * threshold:.0f}%")
    ax.set_xscale("log", base=2)
    all_n = sorted({n for ns, _ in series.values() for n in ns})
    ax.set_xticks(all_n, [str(n) for n in all_n])
    ax.set_xlabel("ObfNet bottleneck N")
    ax.set_ylabel("feature accuracy F_a (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def privacy_utility(points: Sequence[dict], path: str | Path, *, chance: float, threshold: float) -> Path:
    """Utility (digit accuracy) against leakage (F_a), one point per ObfNet."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    markers = {"mlp": "o", "cnn": "s"}
    for arch in sorted({p["arch"] for p in points}):
        ps = [p for p in points if p["arch"] == arch]
        ax.scatter(
            [100 * p["fa"] for p in ps],
            [100 * p["utility"] for p in ps],
            marker=markers.get(arch, "o"),
            label=f"ObfNet-{arch.upper()}",
            s=40,
        )
        for p in ps:
            ax.annotate(
                str(p["bottleneck"]),
                (100 * p["fa"], 100 * p["utility"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.axvline(100 * chance, color="grey", ls=":", label="chance")
    ax.axvline(100 * threshold, color="black", ls="--", label="compromised above")
    ax.set_xlabel("leakage: best colour feature accuracy F_a (%)  (lower is more private)")
    ax.set_ylabel("utility: InfNet digit accuracy on obfuscated test images (%)")
    ax.set_xlim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("privacy-utility trade-off (labels: bottleneck N)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
