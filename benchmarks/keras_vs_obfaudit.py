"""ObfNet training speed beside the original Keras code, interleaved on one machine (issue 17).

Each round runs ``../shared/bench/keras_reference.py`` (in its own TensorFlow venv) on
ObfNet-MLP(512) and ObfNet-CNN(512) through a frozen InfNet-CNN, then the same workloads
through obfaudit's training loop with its defaults (bfloat16 autocast on a CPU, channels-last,
the reference initialisation, constant Adam 1e-3 as Keras): the embedded 4,000 training images
tiled to ``--samples`` per epoch, batch 128, an InfNet-CNN first trained one epoch. Both
report samples/s of their fastest epoch after the first and test accuracy (1,000 images).

    python benchmarks/keras_vs_obfaudit.py --keras-python ../tfvenv/bin/python [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from obfaudit._io import keep_freed_memory
from obfaudit.data import load_mnist
from obfaudit.experiments.steps import digit_accuracy, fit_infnet
from obfaudit.models import Role, create_model, model_for
from obfaudit.train import TrainConfig, train_obfnet

KERAS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "keras_reference.py"


def tiled(data, samples: int):
    reps = -(-samples // len(data))
    idx = torch.arange(len(data)).repeat(reps)[:samples]
    return data.x[idx], data.labels["digit"][idx]


def obfaudit_round(samples: int, epochs: int) -> list[dict]:
    train, test = load_mnist("train"), load_mnist("test")
    x, y = tiled(train, samples)
    big = type(train)(x, {"digit": y}, train.source, "train", train.classes)
    infnet, _ = fit_infnet("cnn", big, test, TrainConfig(epochs=1, patience=None, val_fraction=0.0, seed=1))
    out = []
    for arch in ("mlp", "cnn"):
        torch.manual_seed(1)
        obf = create_model(model_for(Role.OBFUSCATOR, arch), input_shape=(1, 28, 28), bottleneck=512)
        cfg = TrainConfig(epochs=epochs, patience=None, val_fraction=0.0, seed=1, desc=f"obf-{arch}")
        fit = train_obfnet(obf, infnet, x, y, cfg)
        best = min(h["seconds"] for h in fit.history[1:] or fit.history)
        acc = digit_accuracy(lambda t, o=obf: infnet(o(t)), test)
        out.append(
            {
                "framework": f"obfaudit (torch {torch.__version__})",
                "workload": f"obf-{arch}",
                "samples": samples,
                "samples_per_s": round(samples / best),
                "test_acc": round(acc, 4),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def keras_round(python: str, samples: int, epochs: int) -> list[dict]:
    cmd = [
        python,
        str(KERAS),
        "--samples",
        str(samples),
        "--epochs",
        str(epochs),
        "--workloads",
        "obf-mlp,obf-cnn",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for r in rows:
        print(json.dumps(r), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keras-python", required=True, help="python of a venv with tensorflow-cpu and mlxtend")
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/keras_vs_obfaudit.json"))
    args = ap.parse_args()
    keep_freed_memory()
    rows = []
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for row in keras_round(args.keras_python, args.samples, args.epochs):
            rows.append({"round": r, **row})
        for row in obfaudit_round(args.samples, args.epochs):
            rows.append({"round": r, **row})
    summary = {}
    for w in ("obf-mlp", "obf-cnn"):
        k = [x for x in rows if x["workload"] == w and x["framework"].startswith("keras")]
        o = [x for x in rows if x["workload"] == w and x["framework"].startswith("obfaudit")]
        summary[w] = {
            "keras_samples_per_s": [x["samples_per_s"] for x in k],
            "obfaudit_samples_per_s": [x["samples_per_s"] for x in o],
            "speedup_per_round": [
                round(b["samples_per_s"] / a["samples_per_s"], 2) for a, b in zip(k, o, strict=True)
            ],
            "keras_test_acc": [x["test_acc"] for x in k],
            "obfaudit_test_acc": [x["test_acc"] for x in o],
        }
    result = {
        "threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - t0),
        "rows": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
