"""``obfaudit edge``: the device of the study's system, obfuscating and sending to a server."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from obfaudit.commands._base import Command, Interface, Result, json_option, pick
from obfaudit.commands._options import add, positive_float, positive_int
from obfaudit.serve.jobs import EdgeJob


@dataclass
class EdgeRun(Result):
    """What the edge measured (the summary also written to edge.json)."""

    values: dict

    def to_dict(self) -> dict:
        return self.values

    def summary(self) -> str:
        r = self.values
        lat, server = r["latency_ms"], r["server_ms_per_request"]
        lines = [
            f"{r['images']} images in {r['requests']} requests, {r['wire']} on the wire: "
            f"server accuracy {r['accuracy']:.2%}",
            f"  {r['body_bytes_per_image']:.0f} bytes/image on the wire "
            f"({r['tensor_bytes_per_image']:.0f} of tensor)",
            f"  latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms; "
            f"{r['images_per_s']:.0f} images/s, {r['requests_per_s']:.0f} requests/s",
            f"  obfuscation on this device {r['obfuscate_ms_per_image']:.3f} ms/image",
        ]
        if server:
            lines.append(
                f"  server per request: decode {server['compute_input_ms']:.2f} ms, "
                f"infer {server['compute_infer_ms']:.2f} ms, encode {server['compute_output_ms']:.2f} ms"
            )
        lines.append(f"record: {r['record']}")
        return "\n".join(lines)


def edge(job: EdgeJob, *, log=lambda line: None) -> EdgeRun:
    """Obfuscate the test images, send them to the server, write edge.json."""
    from obfaudit.serve.edge import run_edge

    return EdgeRun(run_edge(job, log=log))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(
        p,
        EdgeJob,
        [
            "obfnet", "server", "model", "input_name", "output", "wire", "batch_size", "concurrency",
            "n", "token", "timeout", "data", "attributes", "attribute", "size", "data_root", "seed",
            "device", "out",
        ],
        obfnet={"required": True, "metavar": "MODEL"},
        server={"required": True, "metavar": "URL"},
        wire={"choices": ("float32", "float16", "uint8")},
        batch_size={"type": positive_int},
        concurrency={"type": positive_int},
        timeout={"type": positive_float},
        data={"metavar": "colored-mnist|DIR"},
    )  # fmt: skip
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    from obfaudit.commands._base import Progress

    return edge(
        pick(args, EdgeJob, progress=ui.progress_bars), log=lambda line: ui.on_progress(Progress(line))
    )


COMMAND = Command(
    "edge",
    "obfuscate test images locally and send them to a server",
    "The edge device: obfuscates test images with an ObfNet (PyTorch or ONNX), sends them to an Open "
    "Inference Protocol server, and reports utility, bytes per image on the wire, latency percentiles and "
    "throughput. Writes edge.json, the record that scores a capture.",
    add_arguments,
    run,
)
