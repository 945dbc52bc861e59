"""``obfaudit export``: the ObfNet as an ONNX graph for the device, with what it costs there.

The export is checked against PyTorch on the same inputs (max |difference| reported; a
gap above ``tolerance`` is an error), and timed the way a small edge device runs it: one
image at a time on one thread, through onnxruntime and through PyTorch.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import torch

from obfaudit.errors import ObfauditError
from obfaudit.serve.jobs import ExportJob


def _median_ms(fn, runs: int) -> dict:
    for _ in range(min(20, runs)):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def export_obfnet(job: ExportJob) -> dict:
    """Export, check parity, measure size and single-thread latency; returns the figures."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ObfauditError("export needs onnx and onnxruntime: pip install 'obfaudit[onnx]'") from None
    from obfaudit.models import load_model
    from obfaudit.models.io import model_paths
    from obfaudit.transforms.onnx import export_onnx

    model, info = load_model(job.obfnet, role="obfuscator")
    if not job.onnx.parent.is_dir():
        raise ObfauditError(f"--onnx {job.onnx}: folder {job.onnx.parent} does not exist")
    shape = tuple(info.get("input_shape") or model.input_shape)
    tmp = job.onnx.with_name(f".{job.onnx.name}.tmp")
    try:  # the graph lands at --onnx only once it matches PyTorch
        export_onnx(model, tmp, shape)
        graph = onnx.load(str(tmp))
        sidecar = {k: info[k] for k in ("arch", "kwargs", "seed", "dataset", "sha256") if k in info}
        graph.metadata_props.add(key="obfaudit", value=json.dumps(sidecar))
        onnx.save(graph, str(tmp))
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
        g = torch.Generator().manual_seed(job.seed)
        x = torch.rand(job.check_images, *shape, generator=g)
        noisy = bool(getattr(model, "noise", 0))
        with torch.inference_mode():
            want = model(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        max_diff = None if noisy else float(np.abs(got - want).max())
        if max_diff is not None and not max_diff <= job.tolerance:
            raise ObfauditError(
                f"the ONNX graph differs from PyTorch by up to {max_diff:.2e} "
                f"(> {job.tolerance:.0e}): not written"
            )
        tmp.replace(job.onnx)
    finally:
        tmp.unlink(missing_ok=True)
    one = x[:1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            torch_time = _median_ms(lambda: model(one), job.timing_runs)
    finally:
        torch.set_num_threads(threads)
    one_np = one.numpy()
    onnx_time = _median_ms(lambda: session.run(None, {"x": one_np}), job.timing_runs)
    weights = model_paths(job.obfnet)[0]
    return {
        "onnx": str(job.onnx),
        "arch": info.get("arch"),
        "input_shape": list(shape),
        "parameters": sum(p.numel() for p in model.parameters()),
        "onnx_bytes": job.onnx.stat().st_size,
        "safetensors_bytes": weights.stat().st_size,
        "parity_max_abs_diff": max_diff,
        "parity_images": job.check_images,
        "parity_note": "outputs are random (noise defence): parity not checkable" if noisy else None,
        "latency_single_thread": {"onnxruntime": onnx_time, "pytorch": torch_time, "batch": 1},
    }
