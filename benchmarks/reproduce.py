"""Time ``obfaudit reproduce`` end to end and per stage; record peak memory.

Runs the preset in-process into a fresh directory (so nothing is skipped) and writes wall
time, seconds per stage (grouped by kind), peak resident memory and the findings to JSON.

    python benchmarks/reproduce.py [--preset default] [--out benchmarks/results/reproduce.json]

``--attacks recnet colornet noisynet pathnet tsne`` prices the study's attacks alone at the
same commit (the cost of the others is the difference); ``--slow-on-all`` runs the slow
attacks (decoder, inversion) on every ObfNet and the controls, not only the preset's.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from tree_memory import TreePeak

from obfaudit._io import keep_freed_memory
from obfaudit.study.context import RunSettings
from obfaudit.study.presets import get_preset
from obfaudit.study.reproduce import reproduce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-root", type=Path, default=None, help="full MNIST (the paper preset)")
    ap.add_argument("--run-dir", type=Path, default=None, help="keep the run here (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reproduce.json"))
    ap.add_argument("--attacks", nargs="+", default=None, help="instead of the preset's attacks")
    ap.add_argument("--slow-on-all", action="store_true", help="slow attacks on every ObfNet")
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI does
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="obfaudit-bench-"))
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    preset = get_preset(args.preset, **({"slow_on": None} if args.slow_on_all else {}))
    with TreePeak() as tree:  # the workers hold data of their own: their memory counts too
        summary = _reproduce(args, run_dir, preset, t0)
    wall = time.perf_counter() - t0
    by_kind: dict[str, float] = defaultdict(float)
    for stage, sec in summary["stage_seconds"].items():
        by_kind[stage.split("-")[0]] += sec  # stage names start with their kind
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "preset": args.preset,
        "attacks": list(args.attacks or preset.attacks),
        "slow_on": preset.slow_on,
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
        "peak_tree_mb": round(tree.mib),
        "seconds_by_kind": {k: round(v, 1) for k, v in sorted(by_kind.items(), key=lambda t: -t[1])},
        "stage_seconds": summary["stage_seconds"],
        "findings": summary["findings"],
        "threads": torch.get_num_threads(),
        "device": args.device,
        "torch": torch.__version__,
        "run_dir": str(run_dir),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("wall_seconds", "peak_tree_mb", "seconds_by_kind")}, indent=2))
    print(f"wrote {args.out}")


def _reproduce(args, run_dir, preset, t0):
    return reproduce(
        RunSettings(
            preset=args.preset,
            out=run_dir,
            device=args.device,
            data_root=args.data_root,
            attacks=tuple(args.attacks) if args.attacks else None,
        ),
        preset=preset,
        log=lambda m: print(f"[{time.perf_counter() - t0:7.1f} s] {m}", file=sys.stderr, flush=True),
    )


if __name__ == "__main__":
    main()
