"""Wall time and peak memory of ``obfaudit cost`` (Table 1 at 224x224x3), as a user runs it.

Runs the installed console command in a child process, ``--repeat`` times, and reports the
wall seconds and the child's peak resident memory (``ru_maxrss``) of each run. The issue's
targets: under 10 s and under 1 GB on the 2-core machine.

    python benchmarks/cost.py [--repeat 3] [--out benchmarks/results/cost.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def one_run(command: list[str]) -> dict:
    """Run ``command`` in a fresh child (a small Python parent reads its peak) and time it."""
    t0 = time.perf_counter()
    script = (
        "import resource, subprocess, sys;"
        f"subprocess.run({command!r}, check=True, stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": int(out.stdout) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--input", default="224x224x3")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cost.json"))
    args = ap.parse_args()
    exe = shutil.which("obfaudit") or str(Path(sys.executable).with_name("obfaudit"))
    command = [exe, "cost", "--input", args.input]
    runs = [one_run(command) for _ in range(args.repeat)]
    for r in runs:
        print(f"obfaudit cost --input {args.input}: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
