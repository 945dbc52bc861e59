"""Per ObfNet of a run: do the stronger attacks beat the study's? With 95% intervals.

Reads a run directory's results.json and prints, for each Colored-MNIST ObfNet, RecNet,
NoisyNet and PathNet against the eavesdropper's decoder, the decoder-started inversion and
random-start inversion (F_a and SSIM with intervals), then the report's comparison (the
strongest new attack against the strongest of the study's, overall and for the adversary),
and the seconds each attack took summed over the run.

    python benchmarks/compare_attacks.py runs/default [--extra records.json ...]

``--extra`` adds records written by ``attack_cost.py --save`` (attacks run later on the
same saved ObfNets), so the comparison covers ObfNets the preset ran no slow attacks on.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from obfaudit.records import Experiment
from obfaudit.report.collect import attacks_by_subject, compare
from obfaudit.report.findings import beyond_study, beyond_summary
from obfaudit.report.html import num_ci, pct_ci

STUDY = ("recnet", "noisynet", "pathnet")
NEW = ("decoder", "inversion-decoder", "inversion")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="records from attack_cost.py --save")
    args = ap.parse_args()
    results = json.loads((args.run / "results.json").read_text())
    exps = [Experiment.from_dict(e) for e in results["experiments"]]
    for path in args.extra:
        exps += [Experiment.from_dict(e) for e in json.loads(path.read_text())["experiments"]]
    on = attacks_by_subject(exps, "colored-mnist")
    new = [a for a in NEW if any(a in s for s in on.values())]
    print(
        "| ObfNet | N | "
        + " | ".join(f"{a} F_a" for a in STUDY + tuple(new))
        + " | recnet SSIM | "
        + " | ".join(f"{a} SSIM" for a in new)
        + " | "
        + " | ".join(f"{a} vs best of study" for a in new)
        + " |"
    )
    print("|---" * (2 + len(STUDY) + 3 * len(new) + 1) + "|")
    for (arch, n), s in sorted(on.items()):
        if not any(a in s for a in new):
            continue
        fa = [
            pct_ci(s[a].metrics.get("feature_accuracy"), s[a].metrics.get("feature_accuracy_ci"))
            if a in s
            else "-"
            for a in STUDY + tuple(new)
        ]
        ssim = [
            num_ci(s[a].metrics.get("ssim"), s[a].metrics.get("ssim_ci"), ".2f") if a in s else "-"
            for a in ("recnet", *new)
        ]
        verdicts = []
        for a in new:
            if a not in s:
                verdicts.append("-")
                continue
            vs = {b: compare(s[a], s[b]) for b in STUDY if b in s}
            verdicts.append(", ".join(f"{v} {b}" for b, v in vs.items()))
        print(f"| {arch.upper()} | {n} | " + " | ".join(fa + ssim + verdicts) + " |")
    print()
    print(beyond_summary(beyond_study(exps)))
    seconds: dict[str, float] = defaultdict(float)
    for e in exps:
        if e.kind in ("attack", "control") and e.seconds:
            seconds[e.attack] += e.seconds
    print("\nseconds per attack, summed over the run (ObfNets and controls):")
    for a, sec in sorted(seconds.items(), key=lambda t: -t[1]):
        print(f"  {a:18s} {sec:7.1f}")


if __name__ == "__main__":
    main()
