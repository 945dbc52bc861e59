"""``obfaudit export``: an ObfNet as an ONNX graph for the device, checked and timed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from obfaudit.commands._base import Command, Interface, Result, json_option, pick
from obfaudit.commands._options import add, positive_float, positive_int
from obfaudit.serve.jobs import ExportJob


@dataclass
class Exported(Result):
    """The graph written, its parity with PyTorch, size and single-thread latency."""

    values: dict

    def to_dict(self) -> dict:
        return self.values

    def summary(self) -> str:
        r = self.values
        t = r["latency_single_thread"]
        parity = r["parity_note"] or (
            f"max |ONNX - PyTorch| {r['parity_max_abs_diff']:.2e} on {r['parity_images']} images"
        )
        return "\n".join(
            [
                f"{r['onnx']}: {r['arch']}, {r['parameters']:,} parameters, {r['onnx_bytes'] / 1e6:.2f} MB",
                f"  parity: {parity}",
                f"  one image, one thread: onnxruntime {t['onnxruntime']['median_ms']:.3f} ms "
                f"(p95 {t['onnxruntime']['p95_ms']:.3f}), PyTorch {t['pytorch']['median_ms']:.3f} ms "
                f"(p95 {t['pytorch']['p95_ms']:.3f})",
            ]
        )


def export(job: ExportJob) -> Exported:
    from obfaudit.serve.export import export_obfnet

    return Exported(export_obfnet(job))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(
        p,
        ExportJob,
        ["obfnet", "onnx", "check_images", "tolerance", "timing_runs", "seed"],
        obfnet={"required": True, "metavar": "MODEL"},
        onnx={"required": True, "metavar": "FILE"},
        check_images={"type": positive_int},
        tolerance={"type": positive_float},
        timing_runs={"type": positive_int},
    )
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    return export(pick(args, ExportJob))


COMMAND = Command(
    "export",
    "export an ObfNet to ONNX, with parity, size and single-thread latency",
    "Export a saved ObfNet to ONNX for the device, check it against PyTorch, and measure its size and its "
    "single-image latency on one thread (onnxruntime and PyTorch).",
    add_arguments,
    run,
)
