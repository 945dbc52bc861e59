"""Training throughput of the study's workloads: samples/s and achieved GFLOP/s.

Runs each workload (InfNet-CNN; ObfNet-MLP(512) and ObfNet-CNN(512) through the frozen
InfNet-CNN) through obfaudit's own training loop for a fixed number of steps, in three
variants: plain float32 NCHW (the eager baseline), float32 channels-last, and the default
(bfloat16 autocast + channels-last). FLOPs per step are counted with
``torch.utils.flop_counter`` (a multiply-add = 2). Then trains ObfNet-MLP(512) on the
embedded Colored-MNIST in float32 and in bfloat16 and compares test accuracy.

    python benchmarks/train_speed.py [--steps 150] [--out benchmarks/results/train_speed.json]
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import obfaudit.models.small as small
from obfaudit._io import keep_freed_memory
from obfaudit.data import load_colored_mnist
from obfaudit.models import create_model
from obfaudit.train import (
    TrainConfig,
    accuracy,
    autocast,
    fit,
    freeze,
    predict,
    train_classifier,
    train_obfnet,
)


@contextmanager
def nchw_layout():
    """Undo obfaudit's channels-last layout, to measure the plain eager baseline."""
    saved = small.channels_last
    small.channels_last = lambda x: x.contiguous()
    try:
        yield
    finally:
        small.channels_last = saved


def build(workload: str, shape: tuple[int, int, int], layout: str):
    torch.manual_seed(0)
    infnet = create_model("infnet_cnn", input_shape=shape)
    if workload == "infnet_cnn":
        model, forward = infnet, infnet
    else:
        obf = create_model(workload, input_shape=shape, bottleneck=512)
        freeze(infnet)
        model = obf

        def forward(x, obf=obf, inf=infnet):
            return inf(obf(x))

    if layout == "nchw":
        for m in (model, infnet):
            m.to(memory_format=torch.contiguous_format)
    return model, forward


def flops_per_sample(model, forward, shape, precision: str, batch: int = 128) -> float:
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        with autocast(torch.device("cpu"), precision):
            out = forward(x)
        F.cross_entropy(out.float(), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def throughput(workload: str, shape, variant: str, steps: int) -> dict:
    layout, precision = {
        "fp32-nchw": ("nchw", "fp32"),
        "fp32-cl": ("cl", "fp32"),
        "bf16-cl": ("cl", "bf16"),
    }[variant]
    ctx = nchw_layout() if layout == "nchw" else contextmanager(lambda: (yield))()
    with ctx:
        model, forward = build(workload, shape, layout)
        fps = flops_per_sample(model, forward, shape, precision)
        n = steps * 128
        x = torch.rand(n, *shape)
        y = torch.randint(0, 10, (n,))
        cfg = TrainConfig(epochs=1, precision=precision, patience=None, val_fraction=0.0)
        fit(model, x[:1280], y[:1280], F.cross_entropy, cfg, forward=forward)  # warm-up
        t0 = time.perf_counter()
        fit(model, x, y, F.cross_entropy, cfg, forward=forward)
        seconds = time.perf_counter() - t0
    sps = n / seconds
    return {
        "workload": workload,
        "channels": shape[0],
        "variant": variant,
        "samples_per_s": round(sps),
        "gflop_per_sample": fps / 1e9,
        "achieved_gflops": round(sps * fps / 1e9, 1),
        "s_per_60k_epoch": round(60000 / sps, 1),
    }


def accuracy_check(epochs: int, seeds: tuple[int, ...]) -> dict:
    """ObfNet-MLP(512) on the embedded Colored-MNIST, float32 vs bfloat16, several seeds."""
    import statistics

    train, test = load_colored_mnist("train"), load_colored_mnist("test")
    torch.manual_seed(0)  # one fixed InfNet: runs of this check compare like with like
    infnet = create_model("infnet_cnn", input_shape=train.shape)
    train_classifier(
        infnet, train.x, train.labels["digit"], TrainConfig(epochs=20, patience=None, val_fraction=0)
    )
    out: dict = {
        "infnet_clean_acc": accuracy(predict(infnet, test.x), test.labels["digit"]),
        "epochs": epochs,
    }
    for precision in ("fp32", "bf16"):
        accs, speeds = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            obf = create_model("obfnet_mlp", input_shape=train.shape, bottleneck=512)
            cfg = TrainConfig(epochs=epochs, precision=precision, patience=None, val_fraction=0, seed=seed)
            r = train_obfnet(obf, infnet, train.x, train.labels["digit"], cfg)
            accs.append(accuracy(predict(lambda x, o=obf: infnet(o(x)), test.x), test.labels["digit"]))
            speeds.append(r.samples_per_s)
        out[precision] = {
            "test_acc_per_seed": accs,
            "mean_test_acc": statistics.mean(accs),
            "samples_per_s": round(statistics.mean(speeds)),
        }
        print(precision, [f"{a:.3f}" for a in accs], f"mean {statistics.mean(accs):.4f}", flush=True)
    out["bf16_minus_fp32_points"] = 100 * (out["bf16"]["mean_test_acc"] - out["fp32"]["mean_test_acc"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150, help="timed optimiser steps per measurement")
    ap.add_argument("--epochs", type=int, default=10, help="ObfNet epochs for the accuracy check")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="accuracy check seeds")
    ap.add_argument("--skip-throughput", action="store_true", help="only run the accuracy check")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed.json"))
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI does
    torch.set_num_threads(2)
    rows = []
    for shape in () if args.skip_throughput else ((1, 28, 28), (3, 28, 28)):
        for workload in ("infnet_cnn", "obfnet_mlp", "obfnet_cnn"):
            for variant in ("fp32-nchw", "fp32-cl", "bf16-cl"):
                row = throughput(workload, shape, variant, args.steps)
                rows.append(row)
                print(
                    f"{workload:11s} {shape[0]}ch {variant:9s} {row['samples_per_s']:6d} samples/s "
                    f"{row['achieved_gflops']:6.1f} GFLOP/s "
                    f"({row['gflop_per_sample'] * 1e3:.1f} MFLOP/sample)",
                    flush=True,
                )
    acc = accuracy_check(args.epochs, tuple(args.seeds))
    print(json.dumps(acc, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "throughput": rows,
                "accuracy": acc,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
