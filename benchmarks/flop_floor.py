"""The least time a finished run could have taken on this machine: its FLOPs at the GEMM ceiling.

Reads a run directory (``obfaudit reproduce`` or ``benchmarks/reproduce.py``) and counts the
floating-point operations of every network pass its stage records say it made: InfNet and
ObfNet training, each attack network's training epochs and validation passes (from the
fits' own histories), the transform of every split and proxy an audit observes, and the
inversions' steps. FLOPs per image come from ``torch.utils.flop_counter`` on the real
networks (a multiply-add = 2; convolutions, matrix products). Dividing by the best rate a
large bfloat16 matrix product reaches here gives a lower bound on the run's time: every
other operation (activations, pooling, the optimiser, data movement, t-SNE, the linear
probe, figures) is taken as free. If the bound exceeds a time target, no implementation of
the same networks, epochs and data meets it on this machine.

    python benchmarks/flop_floor.py RUN_DIR [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from obfaudit.attacks.inversion import STEPS as INVERSION_STEPS
from obfaudit.models import Role, create_model, model_for
from obfaudit.train import autocast, freeze

SHAPES = {"colored-mnist": (3, 28, 28), "mnist": (1, 28, 28)}
ATTRIBUTE_CLASSES = 7


def _count(run) -> float:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def _obfnet(arch: str, n: int, shape):
    return create_model(model_for(Role.OBFUSCATOR, arch), input_shape=shape, bottleneck=n)


def _transform(subject: str, shape):
    """The network a subject's traffic comes from; None for transforms without FLOPs."""
    m = re.fullmatch(r"(?:random-weights|obfnet)-(mlp|cnn)-b(\d+)", subject)
    return _obfnet(m[1], int(m[2]), shape) if m else None


@cache
def train_flops(kind: str, shape, extra: str = "") -> float:
    """FLOPs of one training image (forward and backward) of a network as obfaudit trains it."""
    x = torch.rand(8, *shape)
    if kind == "obfnet":
        arch, n = extra.split("-")
        obf = _obfnet(arch, int(n), shape)
        inf = freeze(create_model("infnet_cnn", input_shape=shape))

        def run():
            with autocast(torch.device("cpu"), "bf16"):
                out = inf(obf(x))
            F.cross_entropy(out.float(), torch.zeros(8, dtype=torch.long)).backward()

    else:
        net = {
            "infnet": lambda: create_model("infnet_cnn", input_shape=shape),
            "recnet": lambda: create_model("recnet", input_shape=shape, output_shape=shape),
            "colornet": lambda: create_model("colornet", input_shape=shape, classes=ATTRIBUTE_CLASSES),
        }[kind]()

        def run():
            with autocast(torch.device("cpu"), "bf16"):
                out = net(x)
            out.float().square().mean().backward()

    return _count(run) / len(x)


@cache
def forward_flops(kind: str, shape, extra: str = "") -> float:
    x = torch.rand(8, *shape)
    if kind == "transform":
        net = _transform(extra, shape)
        if net is None:
            return 0.0
    else:
        net = {
            "recnet": lambda: create_model("recnet", input_shape=shape, output_shape=shape),
            "colornet": lambda: create_model("colornet", input_shape=shape, classes=ATTRIBUTE_CLASSES),
            "infnet": lambda: create_model("infnet_cnn", input_shape=shape),
        }[kind]()
    with torch.no_grad():
        return _count(lambda: net(x)) / len(x)


@cache
def inversion_step_flops(subject: str, shape) -> float:
    """One Adam step of the inversion for one image: the transform forward and its input gradient."""
    net = _transform(subject, shape)
    if net is None:
        return 0.0
    freeze(net)
    w = torch.zeros(8, *shape, requires_grad=True)
    return _count(lambda: net(torch.sigmoid(w)).square().sum().backward()) / 8


ATTACK_NET = {
    "recnet": "recnet",
    "decoder": "recnet",
    "colornet": "colornet",
    "noisynet": "colornet",
    "pathnet": "colornet",
}


def fit_flops(kind: str, shape, fit: dict, extra: str = "") -> float:
    """Training epochs on (1 - val share) of the data, a validation forward pass per epoch."""
    n = fit.get("n_train") or 0
    epochs = fit.get("epochs_run") or len(fit.get("history", []))
    has_val = any("val_loss" in h for h in fit.get("history", []))
    n_val = round(0.1 * n) if has_val else 0
    per_train = train_flops(kind, shape, extra)
    per_val = forward_flops(kind, shape, extra) if kind != "obfnet" else 0.0
    return epochs * ((n - n_val) * per_train + n_val * per_val)


def _images_per_epoch(fit: dict) -> int:
    """Training images per epoch of a fit without a validation split (InfNets, ObfNets)."""
    return round(fit["samples_per_s"] * fit["seconds"] / max(fit["epochs_run"], 1))


def inversion_steps(fit: dict, n_test: int) -> float:
    """Image-steps an inversion ran: each batch's steps (recorded since inversions stop once they have
    converged) times its images, else every image for the fixed number of steps."""
    ran = fit.get("steps_run")
    if not ran:
        return INVERSION_STEPS * n_test
    per_batch = -(-n_test // len(ran))
    return sum(steps * min(per_batch, n_test - i * per_batch) for i, steps in enumerate(ran))


def stage_span(run: Path) -> float:
    """Wall seconds from the first stage's start to the last stage's end (each record is written as its
    stage ends, and says how long it ran): with stages side by side, less than the sum of their seconds."""
    ends = []
    for f in (run / "stages").glob("*.json"):
        seconds = json.loads(f.read_text()).get("seconds") or 0
        ends.append((f.stat().st_mtime - seconds, f.stat().st_mtime))
    return max(e for _, e in ends) - min(s for s, _ in ends) if ends else 0.0


def count_run(run: Path) -> dict[str, float]:
    preset = json.loads((run / "config.json").read_text())["preset"]
    n_test = preset["n_test"] or (10_000 if preset["full_mnist"] else 1000)
    n_proxy = 2 * preset["proxy_n"]  # the Noisy and the Path proxy sets
    flops: dict[str, float] = defaultdict(float)
    observed = set()  # what each subject's audit observed once (its transformed data)
    for path in sorted((run / "stages").glob("*.json")):
        stage = json.loads(path.read_text())
        name, result = path.stem, stage.get("result") or {}
        dataset = next((d for d in ("colored-mnist", "mnist") if name.endswith(d) or f"-{d}-" in name), None)
        if dataset is None:
            continue
        shape = SHAPES[dataset]
        if name.startswith("infnet-"):
            fit = {**result["fit"], "n_train": _images_per_epoch(result["fit"])}
            flops["infnets"] += fit_flops("infnet", shape, fit)
        elif name.startswith("obfnet-"):
            m = re.search(r"-(mlp|cnn)-b(\d+)-", name + "-")
            fit = {**result["fit"], "n_train": _images_per_epoch(result["fit"])}
            flops["obfnets"] += fit_flops("obfnet", shape, fit, f"{m[1]}-{m[2]}")
        elif name.startswith(("audit-", "control-")):  # one attack on one subject
            for rec in [result["record"]] if result.get("record") else []:
                subject, attack, fit = (dataset, rec["subject"]), rec["attack"], rec.get("fit") or {}
                per_transform = forward_flops("transform", shape, subject[1])
                # what the audit observes once per subject: its training split and test traffic,
                # and the proxy images when an adversary attack trains on them
                if subject not in observed and fit.get("trained_on", "").endswith("/train"):
                    observed.add(subject)
                    flops["transforms"] += (fit["n_train"] + n_test) * per_transform
                if attack in ("noisynet", "pathnet", "decoder") and (subject, "proxy") not in observed:
                    observed.add((subject, "proxy"))
                    flops["transforms"] += n_proxy * per_transform
                if attack in ATTACK_NET and fit.get("n_train"):
                    net = ATTACK_NET[attack]
                    flops[attack] += fit_flops(net, shape, fit) + n_test * forward_flops(net, shape)
                elif attack.startswith("inversion"):
                    flops[attack] += inversion_steps(fit, n_test) * inversion_step_flops(subject[1], shape)
    return dict(flops)


def gemm_ceiling(seconds: float = 3.0) -> float:
    """Best FLOP/s of a bfloat16 matrix product far larger than any in the run."""
    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    b = torch.randn(2048, 2048, dtype=torch.bfloat16)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    flops = count_run(args.run)
    ceiling = gemm_ceiling()
    total = sum(flops.values())
    rows = {
        k: {"tflop": v / 1e12, "floor_s": v / ceiling}
        for k, v in sorted(flops.items(), key=lambda kv: -kv[1])
    }
    for k, r in rows.items():
        print(f"{k:18s} {r['tflop']:8.2f} TFLOP  >= {r['floor_s']:6.1f} s")
    print(
        f"{'total':18s} {total / 1e12:8.2f} TFLOP  >= {total / ceiling:6.1f} s "
        f"at {ceiling / 1e9:.0f} GFLOP/s (bf16 2048^3 GEMM, {torch.get_num_threads()} threads)"
    )
    measured = sum(
        json.loads(f.read_text()).get("seconds") or 0 for f in (args.run / "stages").glob("*.json")
    )
    span = stage_span(args.run)
    floor = total / ceiling
    print(
        f"the run's stages took {measured:.1f} s together ({measured / floor:.2f}x the floor), "
        f"{span:.1f} s from the first start to the last end ({span / floor:.2f}x the floor)"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "run": str(args.run),
                    "ceiling_gflops": ceiling / 1e9,
                    "threads": torch.get_num_threads(),
                    "total_tflop": total / 1e12,
                    "floor_s": total / ceiling,
                    "stages_s": measured,
                    "stages_wall_s": span,
                    "parts": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
