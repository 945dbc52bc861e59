"""Cost of a model for an input shape: parameters, FLOPs and size, without its memory.

Models are built on PyTorch's ``meta`` device: shapes and no data, so a 279M-parameter
ObfNet costs no memory. FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``
for one image at inference (a multiply-add counts 2; bias additions, activations and
normalisation are not counted, as in the study's figures).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from obfaudit.models import create_model

BYTES_PER_PARAM = 4  # float32

#: The study's Table 1 at 224x224x3 (ObfNets with N = 512).
STUDY_TABLE1 = {
    "ResNet50": {"params": 26.2e6, "flops": 7.73e9, "size_mb": 105.0},
    "ObfNet-MLP": {"params": 154.3e6, "flops": 3.08e8, "size_mb": 617.0},
    "ObfNet-CNN": {"params": 279.1e6, "flops": 6.46e8, "size_mb": 1110.0},
    "LightNet": {"params": 20.7e3, "flops": 5.10e8, "size_mb": 0.076},
    "DenseNet": {"params": 25.0e6, "flops": 2.29e8, "size_mb": 100.0},
}

#: Why a figure cannot match the study's, by model.
NOTES = {
    "ResNet50": "torchvision's ResNet50 with a 10-class head: 23.5M parameters and 4.09G "
    "multiply-adds (8.2e9 FLOPs). The study (Keras) does not describe its head or its FLOP "
    "counter; its 26.2M parameters imply a larger head than a single 10-way layer.",
    "LightNet": "the study's size is of its Keras file (76 KB); 4 bytes x 20.7K parameters = 83 KB.",
    "DenseNet": "widths chosen for the parameter count (+1.6%); no natural choice of conv widths "
    "meets the study's 2.29e8 FLOPs with 25.0M parameters.",
}


def model_cost(arch: str, input_shape: tuple[int, int, int], **kwargs) -> dict:
    """Parameters, FLOPs (one image) and float32 size of a registered model, on the meta device."""
    with torch.device("meta"):
        model = create_model(arch, input_shape=input_shape, **kwargs)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    x = torch.empty(1, *input_shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return {
        "params": params,
        "params_with_buffers": params + buffers,
        "flops": counter.get_total_flops(),
        "size_mb": params * BYTES_PER_PARAM / 1e6,
    }


def cost_table(
    input_shape: tuple[int, int, int] = (3, 224, 224), *, bottleneck: int = 512, classes: int = 10
) -> list[dict]:
    """Table 1 for any input shape: ResNet50, ObfNet-MLP/CNN (bottleneck N), LightNet, DenseNet."""
    rows = []
    study_shape = input_shape == (3, 224, 224) and bottleneck == 512
    for name, arch, kw in (
        ("ResNet50", "resnet50", {"classes": classes}),
        ("ObfNet-MLP", "obfnet_mlp", {"bottleneck": bottleneck}),
        ("ObfNet-CNN", "obfnet_cnn", {"bottleneck": bottleneck}),
        ("LightNet", "lightnet", {}),
        ("DenseNet", "densenet", {}),
    ):
        try:
            row = {"model": name, **model_cost(arch, input_shape, **kw)}
        except (ValueError, RuntimeError) as e:
            row = {"model": name, "error": str(e).splitlines()[0]}
        if study_shape:
            ref = STUDY_TABLE1[name]
            row["study"] = ref
            if "params" in row:
                row["params_vs_study"] = row["params"] / ref["params"] - 1
                row["flops_vs_study"] = row["flops"] / ref["flops"] - 1
            if name in NOTES:
                row["note"] = NOTES[name]
        rows.append(row)
    return rows


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def format_size(mb: float) -> str:
    if mb >= 1000:
        return f"{mb / 1000:.2f} GB"
    if mb >= 1:
        return f"{mb:.0f} MB"
    return f"{mb * 1000:.0f} KB"


def format_table(rows: list[dict]) -> str:
    """Rows of :func:`cost_table` as a plain-text table (study figures beside ours)."""
    head = f"{'model':<11} {'params':>9} {'FLOPs':>9} {'size':>8} | "
    head += f"{'study params':>12} {'FLOPs':>8} {'size':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<11} does not apply: {r['error']}")
            continue
        line = f"{r['model']:<11} {human(r['params']):>9} {r['flops']:>9.3g} {format_size(r['size_mb']):>8}"
        if "study" in r:
            s = r["study"]
            line += f" | {human(s['params']):>12} {s['flops']:>8.3g} {format_size(s['size_mb']):>8}"
        lines.append(line)
    notes = [f"- {r['model']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))
