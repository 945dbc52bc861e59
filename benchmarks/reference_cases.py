"""Is the audit's best image attack at least as good as the obvious inverse? Lossless transforms compromised?

Audits, at 64x64 on the generated shapes (2,000 training and 500 test images, the standard budget),
transforms with a cheap inverse (4x4 pooling as a callable and as ONNX, pooling then a channel mix, a
random linear map with more outputs than inputs) and lossless transforms of other shapes than the image
(examples/lossless.py), with the image attacks only and no controls. Per transform: each attack's SSIM
and PSNR, the reference inverse's, the best, and the wall time; written as JSON.

    python benchmarks/reference_cases.py --out reference-cases.json [--cases pool4 flat]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "pool4": "examples.shrinking:pool4",
    "pool4.onnx": "ONNX",
    "pool4_mix": "examples.shrinking:pool4_mix",
    "patch_linear": "examples.shrinking:patch_linear",
    "scramble": "examples.lossless:scramble",
    "unshuffle": "examples.lossless:unshuffle",
    "flat": "examples.lossless:flat",
}
ATTACKS = ("recnet", "reference", "inversion", "inversion-reference", "inversion-recnet")


def export_pool(path: Path) -> str:
    import torch

    sys.path.insert(0, str(Path.cwd()))
    from examples.shrinking import pool4

    class Pool(torch.nn.Module):
        def forward(self, x):
            return pool4(x)

    torch.onnx.export(Pool(), torch.rand(1, 3, 64, 64), str(path), input_names=["x"], dynamo=False,
                      dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return str(path)


def run_case(name: str, transform: str, work: Path, size: int) -> dict:
    out = work / name
    cmd = [sys.executable, "-m", "obfaudit.cli", "audit", "--transform", transform, "--data", "shapes",
           "--size", str(size), "--attribute", "background", "--no-controls", "--attack", *ATTACKS,
           "--out", str(out), "--cache", str(work / "cache"), "--json"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {
            "transform": transform,
            "error": done.stderr.strip().splitlines()[-1:],
            "wall_s": round(wall, 1),
        }
    doc = json.loads((out / "results.json").read_text())
    scores = {
        e["attack"]: {"ssim": e["metrics"].get("ssim"), "psnr_db": e["metrics"].get("psnr_db")}
        for e in doc["experiments"]
        if e.get("kind") == "attack" and e["metrics"].get("ssim") is not None
    }
    best = max(scores, key=lambda a: scores[a]["ssim"], default=None)
    # an exact reconstruction's PSNR is infinite, which strict JSON writes as null
    psnr = {a: math.inf if s["psnr_db"] is None else s["psnr_db"] for a, s in scores.items()}
    best_psnr = max(psnr.values(), default=None)
    others = max((v for a, v in psnr.items() if a != "reference"), default=None)
    reference = scores.get("reference")
    return {
        "transform": transform,
        "scores": scores,
        "skipped": doc.get("skipped", {}),
        "gradients": doc.get("gradients"),
        "best_ssim": scores[best]["ssim"] if best else None,
        "best_ssim_attack": best,
        "best_psnr_db": None if best_psnr is None or math.isinf(best_psnr) else best_psnr,
        "reference_psnr_db": reference["psnr_db"] if reference else None,
        # the other attacks' best against the reference's (the best overall includes the reference itself)
        "others_at_least_reference": None if not reference or others is None else others >= psnr["reference"],
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--cases", nargs="*", choices=sorted(CASES), default=list(CASES))
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.cases:
            transform = export_pool(work / "graph.onnx") if CASES[name] == "ONNX" else CASES[name]
            results[name] = run_case(name, transform, work, args.size)
            r = results[name]
            print(
                f"{name}: best SSIM {r.get('best_ssim')} ({r.get('best_ssim_attack')}), best PSNR "
                f"{r.get('best_psnr_db')} dB, reference {r.get('reference_psnr_db')} dB, {r['wall_s']} s",
                flush=True,
            )
            args.out.write_text(
                json.dumps({"size": args.size, "attacks": ATTACKS, "cases": results}, indent=2)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
