"""One preset under the serial executor and under Ray, into fresh run directories: wall
times, and whether the results agree (verdicts, and every headline metric).

    python benchmarks/ray_vs_serial.py --preset smoke [--keep DIR] [--save out.json]

Each run is a subprocess (``obfaudit reproduce``), serial first, so neither inherits the
other's warm caches. Ray starts a local instance on this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = ("feature_accuracy", "obfuscated_test_acc", "clean_test_acc", "ssim", "psnr_db")


def run(preset: str, out: Path, executor: str) -> float:
    env = {**os.environ, "OBFAUDIT_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "obfaudit.cli", "reproduce", "--preset", preset, "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--executor", executor], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def experiments(out: Path) -> dict:
    return {e["id"]: e for e in json.loads((out / "results.json").read_text())["experiments"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--keep", type=Path, help="keep both run directories under DIR")
    parser.add_argument("--save", type=Path, help="write the comparison as JSON here")
    parser.add_argument(
        "--serial-from",
        type=Path,
        help="compare with this finished serial run directory instead of running one",
    )
    parser.add_argument("--serial-seconds", type=float, help="its measured wall time (with --serial-from)")
    a = parser.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="ray-vs-serial-"))
    shutil.rmtree(root / "ray", ignore_errors=True)
    if a.serial_from:
        serial_dir, seconds = a.serial_from, {"serial": a.serial_seconds or float("nan")}
    else:
        serial_dir = root / "serial"
        shutil.rmtree(serial_dir, ignore_errors=True)
        seconds = {"serial": run(a.preset, serial_dir, "serial")}
    seconds["ray"] = run(a.preset, root / "ray", "ray")
    s, r = experiments(serial_dir), experiments(root / "ray")
    verdicts = sum(s[k].get("verdict") == r[k].get("verdict") for k in s if k in r)
    diffs = [
        (abs(s[k]["metrics"][m] - r[k]["metrics"][m]), k, m)
        for k in s
        if k in r
        for m in METRICS
        if isinstance(s[k]["metrics"].get(m), int | float) and isinstance(r[k]["metrics"].get(m), int | float)
    ]
    diffs.sort(reverse=True)
    result = {
        "preset": a.preset,
        "cores": os.cpu_count(),
        "serial_s": round(seconds["serial"], 1),
        "ray_s": round(seconds["ray"], 1),
        "ray_over_serial": round(seconds["ray"] / seconds["serial"], 3),
        "experiments": len(s),
        "same_ids": s.keys() == r.keys(),
        "same_verdicts": verdicts,
        "metrics_compared": len(diffs),
        "metrics_identical": sum(d == 0 for d, _, _ in diffs),
        "largest_differences": [{"id": k, "metric": m, "abs_diff": d} for d, k, m in diffs[:5] if d > 0],
        "runs": str(root),
    }
    print(json.dumps(result, indent=2))
    if a.save:
        a.save.write_text(json.dumps(result, indent=2))
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
