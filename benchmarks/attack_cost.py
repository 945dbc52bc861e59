"""Seconds and scores of each attack on ObfNets a reproduction already trained.

Loads the ObfNets, InfNet and judge of a run directory (e.g. runs/default) and audits the
chosen ObfNets with the chosen attacks under the preset's settings, one attack at a time,
printing seconds, F_a and SSIM of each. Use it to price an attack before adding it to a
preset, and to compare attacks on the same ObfNets.

    python benchmarks/attack_cost.py runs/default --subjects mlp-b64 cnn-b128 \
        --attacks inversion decoder linprobe knnprobe [--save records.json]

The attacks on one ObfNet run one after the other on one auditor, as a reproduction's worker runs a
subject's attack stages (the decoder is trained once for ``decoder`` and ``inversion-decoder``);
the seconds are each record's own.
``--save`` writes the records as experiments that ``compare_attacks.py`` merges with a run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from obfaudit._io import keep_freed_memory, write_json
from obfaudit.attacks import attack_names
from obfaudit.models import load_model
from obfaudit.records import Experiment
from obfaudit.study.context import RunContext, RunSettings
from obfaudit.study.presets import get_preset
from obfaudit.transforms import CONTROLS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a reproduction's run directory")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--dataset", default="colored-mnist")
    ap.add_argument(
        "--subjects",
        nargs="+",
        default=["mlp-b64", "cnn-b128"],
        help="ARCH-bN of ObfNets, or identity / null",
    )
    ap.add_argument("--attacks", nargs="+", default=["inversion", "decoder"], choices=attack_names())
    ap.add_argument("--save", type=Path, default=None, help="write the records here (JSON)")
    args = ap.parse_args()
    keep_freed_memory()
    preset = get_preset(args.preset)
    ctx = RunContext(settings=RunSettings(preset=args.preset), preset=preset, out=args.run)
    infnet, _ = load_model(args.run / "models" / f"infnet-cnn-{args.dataset}.safetensors", role="infnet")
    prepared = ctx.prepared(args.dataset, tuple(args.attacks), infnet=infnet)  # the preset's audit
    judge_record = args.run / "stages" / f"judge-{args.dataset}.json"  # where the run kept its judge
    judge = None
    if judge_record.exists():
        judge = load_model(args.run / json.loads(judge_record.read_text())["result"]["model"])[0]
    print("| ObfNet | attack | party | seconds | F_a [95% CI] | SSIM [95% CI] |")
    print("|---|---|---|---|---|---|")
    total, saved = 0.0, []
    for subject in args.subjects:
        if subject in CONTROLS:
            obfnet = CONTROLS[subject]()
        else:
            obfnet, _ = load_model(args.run / "models" / f"obfnet-{subject}-{args.dataset}.safetensors")
        t0 = time.perf_counter()
        res = prepared.audit(f"obfnet-{subject}", obfnet, judge=judge)
        total += time.perf_counter() - t0
        arch, n = subject.split("-b") if subject not in CONTROLS else (subject, 0)
        for r in res.records:
            m = r.metrics
            fa = _ci(m, "feature_accuracy", 100, "%")
            ssim = _ci(m, "ssim", 1, "")
            print(f"| {subject} | {r.attack} | {r.party} | {r.seconds:.1f} | {fa} | {ssim} |", flush=True)
            e = Experiment.from_attack(
                r, id=f"{subject}/{r.attack}", dataset=args.dataset, arch=arch, bottleneck=int(n)
            )
            saved.append(e.to_dict())
        for attack, why in res.skipped.items():
            print(f"| {subject} | {attack} | - | - | skipped: {why} | |")
    if args.save:
        write_json(args.save, {"experiments": saved})
    print(f"\ntotal {total:.1f} s")


def _ci(m: dict, key: str, scale: float, unit: str) -> str:
    v = m.get(key)
    if v is None:
        return "-"
    ci = m.get(f"{key}_ci")
    if ci:
        return f"{scale * v:.2f}{unit} [{scale * ci[0]:.2f}, {scale * ci[1]:.2f}]"
    return f"{scale * v:.2f}{unit}"


if __name__ == "__main__":
    main()
