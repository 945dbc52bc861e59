"""Does ``torch.compile`` pay for obfaudit's training steps? Eager against compiled, side by side.

Each workload is one training step as :func:`obfaudit.train.fit` runs it (bfloat16 autocast on a
CPU, the loss in float32, fused Adam): ObfNet-MLP(512) and ObfNet-CNN(512) through a frozen
InfNet-CNN, InfNet-CNN itself, and the study's MLP RecNet on 3x28x28 images. Variants:

- ``eager``: what obfaudit runs;
- ``compile``: ``torch.compile`` of the step's forward and loss (AOTAutograd compiles the backward);
- ``compile-cpp``: the same with Inductor's C++ wrapper (less Python per call);
- ``modules``: each module compiled on its own (``torch.compile(module)``), the loss eager;
- ``compile-adam``: the eager step with the optimiser step compiled.

For each: the seconds of the first step (compilation), and samples/s over ``--steps`` steps
after ten warm-up steps, on random batches of 128. Variants run in their own processes (a
compiled graph must not leak into the next), interleaved over ``--rounds``.

    python benchmarks/compile_speed.py [--steps 100] [--rounds 2] [--out compile.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

WORKLOADS = ("obfnet-mlp", "obfnet-cnn", "infnet-cnn", "recnet")
VARIANTS = ("eager", "compile", "compile-cpp", "modules", "compile-adam")
BATCH = 128


def step_of(workload: str, variant: str):
    """(one training step on batch i, the optimiser) for ``workload`` compiled as ``variant``."""
    import torch
    import torch.nn.functional as F

    from obfaudit.models import create_model
    from obfaudit.train import autocast, freeze

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    if workload.startswith("obfnet"):
        infnet = freeze(create_model("infnet_cnn", input_shape=(1, 28, 28)))
        net = create_model(f"obfnet_{workload.split('-')[1]}", input_shape=(1, 28, 28), bottleneck=512)
        modules, loss_of = [net, infnet], F.cross_entropy
        x, y = torch.rand(20 * BATCH, 1, 28, 28), torch.randint(0, 10, (20 * BATCH,))
    elif workload == "infnet-cnn":
        net = create_model("infnet_cnn", input_shape=(1, 28, 28))
        modules, loss_of = [net], F.cross_entropy
        x, y = torch.rand(20 * BATCH, 1, 28, 28), torch.randint(0, 10, (20 * BATCH,))
    else:
        net = create_model("recnet", input_shape=(3, 28, 28), output_shape=(3, 28, 28))
        modules, loss_of = [net], F.mse_loss
        x = torch.rand(20 * BATCH, 3, 28, 28)
        y = x.clone()
    net.train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3, fused=True)
    if variant == "modules":
        modules = [torch.compile(m) for m in modules]

    def forward_loss(xb, yb):
        with autocast(cpu, "bf16"):
            out = xb
            for m in modules:
                out = m(out)
        return loss_of(out.float(), yb)

    if variant in ("compile", "compile-cpp"):
        import torch._inductor.config as inductor

        inductor.cpp_wrapper = variant == "compile-cpp"
        forward_loss = torch.compile(forward_loss, dynamic=False)
    opt_step = torch.compile(opt.step) if variant == "compile-adam" else opt.step

    def step(i: int) -> None:
        j = (i % 20) * BATCH
        loss = forward_loss(x[j : j + BATCH], y[j : j + BATCH])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt_step()

    return step


def measure(workload: str, variant: str, steps: int) -> dict:
    step = step_of(workload, variant)
    t0 = time.perf_counter()
    step(0)
    first = time.perf_counter() - t0
    for i in range(1, 10):
        step(i)
    t1 = time.perf_counter()
    for i in range(10, 10 + steps):
        step(i)
    seconds = time.perf_counter() - t1
    return {
        "workload": workload,
        "variant": variant,
        "first_step_s": round(first, 2),
        "samples_per_s": round(steps * BATCH / seconds),
        "ms_per_step": round(1000 * seconds / steps, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", type=Path)
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.steps)))
        return
    rows = []
    for r in range(args.rounds):
        for w in args.workloads:
            for v in args.variants:
                cmd = [sys.executable, __file__, "--one", w, v, "--steps", str(args.steps)]
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if done.returncode:
                    row = {"workload": w, "variant": v, "error": done.stderr.strip().splitlines()[-1:]}
                else:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append({"round": r + 1, **row})
                print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{'workload':<12}"
        + "".join(f"{v:>14}" for v in args.variants)
        + "   (best samples/s; first step s)"
    )
    for w in args.workloads:
        cells = []
        for v in args.variants:
            got = [x for x in rows if x["workload"] == w and x["variant"] == v and "samples_per_s" in x]
            best = max(got, key=lambda x: x["samples_per_s"]) if got else None
            cells.append(
                f"{best['samples_per_s']:>7} ({best['first_step_s']:>4.1f})" if best else f"{'failed':>14}"
            )
        print(f"{w:<12}" + "".join(f"{c:>14}" for c in cells))
    if args.out:
        args.out.write_text(json.dumps({"torch": __import__("torch").__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
