"""Compare the attack scores of two run directories (e.g. before and after a change).

Prints, per ObfNet and attack, F_a (attribute attacks, and the attribute read from
reconstructions) and RecNet's SSIM in both runs, then the mean absolute difference of
all F_a values and the largest weakening (new lower than old), in points.

    python benchmarks/compare_runs.py OLD_RUN_DIR NEW_RUN_DIR

Reads results.json of either run; runs written before the typed records (obfaudit 0.1,
stage names carried the settings) are read too.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def scores(run: Path) -> dict[tuple, dict[str, float]]:
    """{(dataset, arch, N, attack): {"fa": ..., "ssim": ...}} of a run's attacks on ObfNets (a defended
    ObfNet's arch carries its defence: ``mlp+dcor-2``)."""
    out = {}
    for e in json.loads((run / "results.json").read_text())["experiments"]:
        if e["kind"] != "attack":
            continue
        if e.get("bottleneck") is None:  # obfaudit 0.1 parsed names; do the same
            m = re.match(r"audit-(.+)-(mlp|cnn)-b(\d+)/(.+)", e["id"])
            ds, arch, n, attack = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        else:
            ds, arch, n, attack = e["dataset"], e["arch"], e["bottleneck"], e["attack"]
            arch += f"+{e['defence']}" if e.get("defence") else ""
        m = e["metrics"]
        fa = m.get("feature_accuracy")
        out[(ds, arch, n, attack)] = {"fa": fa, "ssim": m.get("ssim")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    old, new = scores(args.old), scores(args.new)
    keys = sorted(set(old) & set(new))
    print("| data | ObfNet | N | attack | F_a old | F_a new | SSIM old | SSIM new |")
    print("|---|---|---|---|---|---|---|---|")
    diffs, ssim_diffs = [], []
    for k in keys:
        o, n = old[k], new[k]

        def f(v, pct=True):
            return "-" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3f}")

        print(
            f"| {k[0]} | {k[1].upper()} | {k[2]} | {k[3]} | {f(o['fa'])} | {f(n['fa'])} | "
            f"{f(o['ssim'], False)} | {f(n['ssim'], False)} |"
        )
        if o["fa"] is not None and n["fa"] is not None:
            diffs.append(100 * (n["fa"] - o["fa"]))
        if o["ssim"] is not None and n["ssim"] is not None:
            ssim_diffs.append(n["ssim"] - o["ssim"])
    only = sorted(set(old) ^ set(new))
    print()
    print(f"{len(keys)} attacks in both runs; {len(only)} in one only: {only[:6]}")
    if diffs:
        print(
            f"F_a ({len(diffs)} values): mean |new - old| = {sum(map(abs, diffs)) / len(diffs):.2f} points; "
            f"mean new - old = {sum(diffs) / len(diffs):+.2f}; largest weakening = {min(diffs):+.1f} points"
        )
    if ssim_diffs:
        mean_abs = sum(map(abs, ssim_diffs)) / len(ssim_diffs)
        print(
            f"SSIM ({len(ssim_diffs)} values): mean |new - old| = {mean_abs:.4f}; "
            f"largest drop = {min(ssim_diffs):+.4f}"
        )


if __name__ == "__main__":
    main()
