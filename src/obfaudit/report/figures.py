"""Figures as PNG files (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from obfaudit._io import atomic_write_bytes  # noqa: E402
from obfaudit.data import COLOUR
from obfaudit.train import as_float  # noqa: E402


def _save(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def to_display(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, 3) array in [0, 1]; each image scaled by its own maximum
    when it leaves [0, 1] (obfuscated outputs are unbounded above).

    A transform may send a flat vector (or any other shape): it is drawn as a grey
    square of its values, zero-padded, so figures never assume image-shaped output.
    """
    x = as_float(x.detach()).float().cpu()  # bytes (0-255) read as [0, 1]
    if x.dim() != 3:
        flat = x.reshape(-1)
        side = max(1, math.ceil(math.sqrt(len(flat))))
        x = torch.nn.functional.pad(flat, (0, side * side - len(flat))).view(1, side, side)
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
    emb: np.ndarray,
    task: np.ndarray,
    attribute: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    task_name: str = "digit",
    attribute_name: str = COLOUR,
    attribute_classes: Sequence[str] | None = None,
) -> Path:
    """Two panels of one t-SNE: points coloured by task class (digit), and by the attribute.

    Each panel has its own legend. For the study's colours the right panel draws each point
    in its true palette colour; for another attribute it uses a qualitative colour map.
    """
    from obfaudit.data import COLOUR_NAMES

    fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, 5.4))
    cmap = plt.get_cmap("tab10")
    classes = np.unique(task)
    a.scatter(emb[:, 0], emb[:, 1], c=[cmap(d % 10) for d in task], s=5, linewidths=0)
    if attribute_name == COLOUR and attribute_classes is None:
        rgb = np.array(_palette_rgb())
        names = COLOUR_NAMES
    else:
        names = tuple(attribute_classes or (str(i) for i in range(int(attribute.max()) + 1)))
        rgb = np.array([plt.get_cmap("tab10")(i % 10)[:3] for i in range(len(names))])
    b.scatter(emb[:, 0], emb[:, 1], c=rgb[attribute], s=6, edgecolors=(0, 0, 0, 0.25), linewidths=0.2)
    for ax in (a, b):
        for d in classes:
            cx, cy = np.median(emb[task == d], axis=0)
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
    a.set_title(f"coloured by {task_name} (numbers: {task_name} centres)", fontsize=9)
    b.set_title(f"coloured by the image's true {attribute_name}", fontsize=9)
    for ax, name, colours, labels in (
        (a, task_name, [cmap(int(d) % 10) for d in classes], [str(d) for d in classes]),
        (b, attribute_name, list(rgb), list(names)),
    ):
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=c, markeredgecolor=(0, 0, 0, 0.4), label=n)
            for c, n in zip(colours, labels, strict=True)
        ]
        ax.legend(
            handles=handles,
            title=name,
            fontsize=7,
            title_fontsize=7,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
        )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def fa_bars(
    rows: Sequence[dict], path: str | Path, *, chance: float, threshold: float, title: str = ""
) -> Path:
    """Feature accuracy per attack (one row each, readable however many there are), one bar per subject
    in its own colour (the subject first, then the controls), 95% intervals as whiskers, the chance and
    compromise lines; a bar whose interval lies above the line has a black edge."""
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    by = {(r["subject"], r["attack"]): r for r in rows}
    k = len(subjects)
    height = 0.8 / k
    fig, ax = plt.subplots(figsize=(8.0, 1.2 + len(attacks) * (0.15 + 0.11 * k)))
    for j, subject in enumerate(subjects):
        for i, attack in enumerate(attacks):
            r = by.get((subject, attack))
            if r is None:
                continue
            v, ci = 100 * r["feature_accuracy"], r.get("ci")
            above = bool(ci) and 100 * ci[0] > 100 * threshold
            ax.barh(
                i + (j - (k - 1) / 2) * height,
                v,
                height=0.9 * height,
                color=f"C{j}",
                xerr=[[v - 100 * ci[0]], [100 * ci[1] - v]] if ci else None,
                capsize=2,
                edgecolor="black" if above else "none",
                linewidth=1.2,
                label=subject if not any(h.get_label() == subject for h in ax.containers) else None,
            )
    ax.axvline(100 * chance, color="grey", ls=":", label=f"chance {100 * chance:.1f}%")
    ax.axvline(100 * threshold, color="black", ls="--", label=f"compromised above {100 * threshold:.0f}%")
    ax.set_yticks(range(len(attacks)), attacks, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("feature accuracy F_a (%)")
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))  # each subject once
    ax.legend(
        seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
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
    intervals: dict[str, Sequence[Sequence[float] | None]] | None = None,
) -> Path:
    """F_a (%) against bottleneck N (log2 axis), one line per series, chance and threshold.

    ``intervals[name]`` gives each point's 95% interval (or None), drawn as error bars.
    """
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for name, (ns, fas) in series.items():
        y = [100 * f for f in fas]
        cis = (intervals or {}).get(name)
        if cis and any(c is not None for c in cis):
            lo = [v - 100 * c[0] if c else 0 for v, c in zip(y, cis, strict=True)]
            hi = [100 * c[1] - v if c else 0 for v, c in zip(y, cis, strict=True)]
            ax.errorbar(ns, y, yerr=[lo, hi], marker="o", capsize=3, label=f"{name} (95% interval)")
        else:
            ax.plot(ns, y, marker="o", label=name)
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


def _leakage_axes(ax, chance: float, threshold: float, xlabel: str, ylabel: str, title: str) -> None:
    """Chance and compromise lines on a leakage (F_a %) x axis, labels, grid, title, legend."""
    ax.axvline(100 * chance, color="grey", ls=":", label=f"chance {100 * chance:.1f}%")
    ax.axvline(100 * threshold, color="black", ls="--", label=f"compromised above {100 * threshold:.0f}%")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 105)
    ax.grid(alpha=0.3)
    # Outside the axes: inside, it hid the points of the least useful obfuscators.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, fontsize=10)


def privacy_utility(points: Sequence[dict], path: str | Path, *, chance: float, threshold: float) -> Path:
    """Utility (task accuracy) against leakage (worst-case F_a), one point per obfuscator.

    Points of one architecture are joined in bottleneck order; the N labels are placed by
    adjustText so that they neither overlap each other nor the points.
    """
    from adjustText import adjust_text

    fig, ax = plt.subplots(figsize=(8.0, 4.8))
    markers = {"mlp": "o", "cnn": "s"}
    texts, xs, ys = [], [], []
    for arch in sorted({p["arch"] for p in points}):
        ps = sorted((p for p in points if p["arch"] == arch), key=lambda p: p["bottleneck"])
        x = [100 * p["fa"] for p in ps]
        y = [100 * p["utility"] for p in ps]
        ax.plot(x, y, marker=markers.get(arch, "o"), ms=6, lw=0.8, alpha=0.85, label=f"ObfNet-{arch.upper()}")
        xs += x
        ys += y
        texts += [
            ax.text(xi, yi, str(p["bottleneck"]), fontsize=7) for xi, yi, p in zip(x, y, ps, strict=True)
        ]
    _leakage_axes(
        ax,
        chance,
        threshold,
        "leakage: worst-case attribute F_a over the attacks (%), lower is more private",
        "utility: digit accuracy on\nobfuscated test images (%)",
        "privacy-utility trade-off (labels: bottleneck N)",
    )
    fig.tight_layout()
    if texts:
        adjust_text(
            texts,
            x=xs,
            y=ys,
            ax=ax,
            expand=(1.3, 1.5),
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5},
        )
    return _save(fig, path)


def defence_frontier(rows: Sequence[dict], path: str | Path, *, chance: float, threshold: float) -> Path:
    """Utility against the worst-case F_a over every attack, one point per defended obfuscator,
    with the F_a interval as a horizontal bar; Pareto-optimal points circled and joined."""
    from adjustText import adjust_text

    fig, ax = plt.subplots(figsize=(8.4, 5.0))
    markers = {
        "none": "o",
        "noise": "s",
        "dcor": "^",
        "adversarial": "D",
        "adversarial-ensemble": "v",
        "invariance": "P",
    }
    archs = {r["arch"] for r in rows}
    texts, xs, ys = [], [], []
    shown = set()
    for r in rows:
        if r["fa"] is None or r["utility"] is None:
            continue
        x, y = 100 * r["fa"], 100 * r["utility"]
        ci = r["fa_ci"]
        label = r["defence"] if r["defence"] not in shown else None
        shown.add(r["defence"])
        ax.errorbar(
            x,
            y,
            xerr=[[x - 100 * ci[0]], [100 * ci[1] - x]] if ci else None,
            marker=markers.get(r["defence"], "o"),
            ms=6,
            capsize=2,
            lw=0.8,
            color=f"C{list(markers).index(r['defence']) if r['defence'] in markers else len(markers)}",
            label=label,
            mfc="none" if r["arch"] == "cnn" and len(archs) > 1 else None,
        )
        if r.get("passes"):
            ax.scatter([x], [y], marker="*", s=260, color="gold", edgecolors="black", lw=0.6, zorder=5,
                       label=None if "passes" in shown else "passes: every attack below the line")  # fmt: skip
            shown.add("passes")
        xs.append(x)
        ys.append(y)
        strength = "" if r["defence"] == "none" else f" {r['strength_name'] or 's'}={r['strength']:g}"
        name = f"{r['arch'].upper()}({r['bottleneck']})" if len(archs) > 1 else f"N={r['bottleneck']}"
        texts.append(ax.text(x, y, f"{name}{strength}", fontsize=7))
    front = sorted((100 * r["fa"], 100 * r["utility"]) for r in rows if r["pareto"])
    if front:
        ax.step(
            *zip(*front, strict=True), where="post", color="black", lw=1, alpha=0.6, label="Pareto frontier"
        )
        ax.scatter(*zip(*front, strict=True), s=160, facecolors="none", edgecolors="black", lw=1)
    _leakage_axes(
        ax,
        chance,
        threshold,
        "leakage: worst-case attribute F_a over every attack (%, 95% interval)",
        "utility: digit accuracy on\nwhat is sent (%)",
        "defences: privacy-utility frontier (upper left is better)"
        + ("\nfilled: ObfNet-MLP, hollow: ObfNet-CNN" if len(archs) > 1 else ""),
    )
    fig.tight_layout()
    if texts:
        adjust_text(texts, x=xs, y=ys, ax=ax, arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
    return _save(fig, path)


def _percent_with_errors(rows: Sequence[dict], key: str) -> tuple[list[float], list[list[float]]]:
    """Each row's ``key`` in percent (NaN where missing) and the error bars of its ``key_ci``."""
    values = [100 * r[key] if r.get(key) is not None else np.nan for r in rows]
    cis = [r.get(f"{key}_ci") for r in rows]
    lower = [v - 100 * c[0] if c else 0 for v, c in zip(values, cis, strict=True)]
    upper = [100 * c[1] - v if c else 0 for v, c in zip(values, cis, strict=True)]
    return values, [lower, upper]


def split_sweep(
    rows: Sequence[dict], path: str | Path, *, chance: float, threshold: float, title: str = ""
) -> Path:
    """Leakage against the depth of a cut: the worst-case F_a (95% intervals) with chance and the line,
    the best SSIM, the bytes sent per image and, where measured, the task's utility at the cut."""
    x = np.arange(len(rows))
    labels = [r["node"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(8.4, 5.6), sharex=True)
    ax = axes[0, 0]
    fa, err = _percent_with_errors(rows, "worst_fa")
    ax.errorbar(x, fa, yerr=err, fmt="o-", color="#c0392b", capsize=3, label="worst-case F_a")
    ax.axhline(100 * chance, color="grey", ls=":", label=f"chance {100 * chance:.1f}%")
    ax.axhline(100 * threshold, color="black", ls="--", label=f"compromised above {100 * threshold:.0f}%")
    ax.set_ylim(0, 105)
    ax.set_ylabel("attribute F_a (%)")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[0, 1]
    ssim = [r["best_ssim"] if r.get("best_ssim") is not None else np.nan for r in rows]
    ax.plot(x, ssim, "o-", color="#8e44ad")
    ax.set_ylim(min(0.0, np.nanmin(ssim) if np.isfinite(ssim).any() else 0.0), 1.02)
    ax.set_ylabel("best reconstruction SSIM")
    ax = axes[1, 0]
    ax.plot(x, [r["bytes_per_image"] for r in rows], "o-", color="#2e86c1")
    ax.set_yscale("log")
    ax.set_ylabel("bytes sent per image")
    ax = axes[1, 1]
    util, uerr = _percent_with_errors(rows, "utility")
    ax.errorbar(x, util, yerr=uerr, fmt="o-", color="#1e8449", capsize=3)
    chances = {r["utility_chance"] for r in rows if r.get("utility_chance")}
    if len(chances) == 1:
        task_chance = 100 * chances.pop()
        ax.axhline(task_chance, color="grey", ls=":", label=f"majority class {task_chance:.1f}%")
        ax.legend(fontsize=7, loc="lower left")
    ax.set_ylim(0, 105)
    ax.set_ylabel("task read at the cut (%)")
    for ax in axes[1]:
        ax.set_xticks(x, labels, fontsize=8, rotation=20)
        ax.set_xlabel("cut (shallow to deep)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def knowledge_curve(rows: Sequence[dict], path: str | Path, *, chance: float, threshold: float) -> Path:
    """How much the attacker must know: the worst-case F_a (left) and the best SSIM (right) against the
    number of private (image, sent tensor) pairs it holds, with 95% intervals: the proxy-only
    eavesdropper at k = 0 (a diamond), the known-pairs adversary at each k (joined), the server with
    every training pair (a square)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8))
    ks = [r["k"] for r in rows]
    styles = {
        "proxies": {"marker": "D", "color": "C1", "label": "eavesdropper, its generated proxies (k = 0)"},
        "pairs": {"marker": "o", "color": "C0", "label": "adversary with k known pairs"},
        "server": {"marker": "s", "color": "black", "label": "server, every training pair"},
    }
    for ax, key, label in ((axes[0], "fa", "worst-case attribute F_a (%)"), (axes[1], "ssim", "best SSIM")):
        scale = 100 if key == "fa" else 1
        groups = {"proxies": rows[:1], "pairs": rows[1:-1], "server": rows[-1:]}
        for group, members in groups.items():
            pts = [r for r in members if r.get(key) is not None]
            if not pts:
                continue
            y = [scale * r[key] for r in pts]
            err = [
                [
                    v - scale * r[f"{key}_ci"][0] if r.get(f"{key}_ci") else 0
                    for v, r in zip(y, pts, strict=True)
                ],
                [
                    scale * r[f"{key}_ci"][1] - v if r.get(f"{key}_ci") else 0
                    for v, r in zip(y, pts, strict=True)
                ],
            ]
            ax.errorbar([r["k"] for r in pts], y, yerr=err, ms=6, capsize=3, lw=1,
                        ls="-" if group == "pairs" else "none", **styles[group])  # fmt: skip
        if key == "fa":
            ax.axhline(100 * chance, color="grey", ls=":", lw=1, label=f"chance {100 * chance:.1f}%")
            ax.axhline(
                100 * threshold,
                color="black",
                ls="--",
                lw=1,
                label=f"compromised above {100 * threshold:.0f}%",
            )
            ax.set_ylim(0, 105)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(-0.4, max(ks) * 1.6)
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks], fontsize=8)
        ax.set_xlabel("private pairs the attacker holds (k)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.08)
    )
    fig.suptitle("how much the attacker must know", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
