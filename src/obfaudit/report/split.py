"""The report of a split-point sweep: leakage against the depth of the cut, one row per cut, and a
link to each cut's own audit report."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from obfaudit._io import atomic_write_text
from obfaudit.report import figures as F
from obfaudit.report.html import _environment, num_ci, pct_ci


def write_split_report(
    out: Path, model: str, cuts: list[dict], baselines: dict, task: str, *, screen: str | None = None
) -> Path:
    """Write ``out/figures/split.png`` and ``out/report.html`` for the sweep of ``model``'s ``cuts``
    (the rows of :class:`obfaudit.audit.split.SplitReport`); returns the page."""
    b = baselines
    figure = F.split_sweep(
        cuts,
        out / "figures" / "split.png",
        chance=b["chance"],
        threshold=b["threshold"],
        title=f"{model}: what each cut leaks of {b['attribute']}",
    )
    rows = [
        {
            "node": c["node"],
            "shape": "x".join(map(str, c["shape"])),
            "bytes": c["bytes_per_image"],
            "verdict": c["verdict"],
            "worst": f"{pct_ci(c['worst_fa'], c['worst_fa_ci'])} ({c['worst_attack']})"
            if c["worst_fa"] is not None
            else "-",
            "ssim": f"{num_ci(c['best_ssim'], c['best_ssim_ci'])} ({c['best_ssim_attack']})"
            if c["best_ssim"] is not None
            else "-",
            "psnr": "exact (infinite)"
            if c.get("best_exact")
            else num_ci(c["best_psnr"], c["best_psnr_ci"], ".1f")
            if c.get("best_psnr") is not None
            else "-",
            "ceiling": f"{c['identity_ssim']:.3f}" if c.get("identity_ssim") is not None else "-",
            "shape_ceiling": f"{c['shape_ssim']:.3f}" if c.get("shape_ssim") is not None else "-",
            "utility": pct_ci(c["utility"], c["utility_ci"]) if c["utility"] is not None else "-",
            "link": os.path.relpath(c["report"], out) if c.get("report") else None,
            "weaker": ", ".join(c.get("weaker_attacks_only") or {}),
        }
        for c in cuts
    ]
    page = (
        _environment()
        .get_template("split.html.j2")
        .render(
            model=model,
            b=b,
            task=task,
            rows=rows,
            screen=screen,
            figure="data:image/png;base64," + base64.b64encode(figure.read_bytes()).decode(),
        )
    )
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
