"""A standard audit's wall time alone and beside CPU-bound processes, as users and CI runners share CPUs.

Runs ``obfaudit audit`` of a transform on the generated shapes (2,000 training and 500 test images of
SIZE x SIZE, the background attribute; ``--data photos``: crops of natural photographs and their
warmth), every applicable attack with the identity and null controls,
into fresh directories and caches (so nothing is kept from an earlier run): once alone, then once
beside each count of busy processes asked for (``yes > /dev/null``, as the issue that asked for this
measured it). Prints and writes the wall times, their ratio to the run alone, the stages' seconds
and the verdicts (which must not change with the load).

    python benchmarks/audit_under_load.py [--size 64] [--transform examples.lossless:unshuffle]
        [--busy 1] [--executor processes] [--out benchmarks/results/audit_under_load.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tree_memory import TreePeak

ROOT = Path(__file__).resolve().parent.parent


def audit(args: argparse.Namespace, folder: Path) -> dict:
    command = [
        str(Path(sys.executable).parent / "obfaudit"),
        "audit",
        "--transform", args.transform,
        "--data", args.data,
        "--size", str(args.size),
        "--attribute", args.attribute or {"shapes": "background", "photos": "warmth"}.get(args.data, ""),
        "--executor", args.executor,
        "--out", str(folder / "audit"),
        "--cache", str(folder / "cache"),
        "--json",
    ]  # fmt: skip
    t0 = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    with TreePeak(process.pid) as tree:  # the audit and its worker processes, together
        stdout, stderr = process.communicate()
    wall = time.perf_counter() - t0
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if done.returncode != 0:
        raise SystemExit(f"the audit failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    stages = [
        json.loads(f.read_text())
        for f in (*folder.glob("audit/stages/*.json"), *folder.glob("cache/stages/*.json"))
    ]
    return {
        "wall_s": round(wall, 1),
        "peak_tree_mib": round(tree.mib),
        "stages_s": round(sum(s["seconds"] for s in stages), 1),
        "verdicts": report["verdicts"],
        "best": {
            r["attack"]: r["metrics"].get("ssim") or r["metrics"].get("feature_accuracy")
            for r in report["records"]
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--transform", default="examples.lossless:unshuffle")
    ap.add_argument("--data", default="shapes", help="shapes, or photos (natural images)")
    ap.add_argument("--attribute", default=None, help="default: background (shapes), warmth (photos)")
    ap.add_argument(
        "--busy", type=int, nargs="*", default=[1], help="busy processes beside the run (0: alone only)"
    )
    ap.add_argument("--executor", default="processes")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/audit_under_load.json"))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="obfaudit-load-"))
    runs = {"alone": audit(args, root / "alone")}
    print(f"alone: {runs['alone']['wall_s']} s", flush=True)
    for n in [b for b in args.busy if b > 0]:
        busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]
        try:
            runs[f"busy{n}"] = audit(args, root / f"busy{n}")
        finally:
            for p in busy:
                p.kill()
        r = runs[f"busy{n}"]
        r["over_alone"] = round(r["wall_s"] / runs["alone"]["wall_s"], 2)
        same = r["verdicts"] == runs["alone"]["verdicts"]
        print(
            f"beside {n} busy: {r['wall_s']} s, {r['over_alone']}x alone; verdicts the same: {same}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "runs": runs}, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
