"""The edge device of the study's system: obfuscate locally, send over the Open Inference
Protocol, measure what it costs and what the server's answers are worth.

The edge alone holds the raw images and their labels. It writes them (as dataset indices
and labels, never images) to its run record, ``edge.json``, which is what lets
``obfaudit audit --traffic`` score an eavesdropper's capture afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from obfaudit._io import check_output_dir, resolve_device, write_json
from obfaudit.errors import ObfauditError
from obfaudit.serve.jobs import EdgeJob
from obfaudit.serve.protocol import WIRE, ProtocolError, decode_response, encode_request

RECORD = "edge.json"


class Stop(Exception):
    """The run cannot go on: the server is gone or refused a request."""


def _headers(job: EdgeJob) -> dict[str, str]:
    import os

    token = job.token or os.environ.get("OBFAUDIT_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _server_error(body: bytes) -> str:
    import json

    try:
        return str(json.loads(body).get("error", body[:200].decode(errors="replace")))
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


async def _get(session, url: str) -> tuple[int, bytes]:
    async with session.get(url) as r:
        return r.status, await r.read()


async def _check_model(session, job: EdgeJob, base: str, shape: tuple[int, ...]) -> dict:
    import json

    import aiohttp

    try:
        status, body = await _get(session, f"{base}/v2/models/{job.model}")
    except (TimeoutError, aiohttp.ClientError) as e:
        raise ObfauditError(f"cannot reach the server at {job.server} ({type(e).__name__}: {e})") from None
    if status != 200:
        raise ObfauditError(f"server {job.server}: model {job.model!r}: {status} {_server_error(body)}")
    try:
        meta = json.loads(body)
        wants = meta["inputs"][0]["shape"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ObfauditError(f"server {job.server}: model {job.model!r}: not V2 model metadata") from None
    if list(wants[1:]) != list(shape):
        raise ObfauditError(
            f"server model {job.model!r} takes {wants}, "
            f"the ObfNet sends (batch, {', '.join(map(str, shape))})"
        )
    return meta


async def _stats(session, base: str, model: str) -> dict | None:
    import json

    try:
        status, body = await _get(session, f"{base}/v2/models/{model}/stats")
        return json.loads(body)["model_stats"][0] if status == 200 else None
    except Exception:  # noqa: BLE001 - statistics are optional (a plain KServe server has none)
        return None


def _stats_delta(before: dict | None, after: dict | None) -> dict | None:
    """Server milliseconds per request in each phase over this run (Triton's statistics)."""
    if not before or not after:
        return None
    b, a = before["inference_stats"], after["inference_stats"]
    n = a["success"]["count"] - b["success"]["count"]
    if n <= 0:
        return None
    return {
        "requests": n,
        **{
            f"{phase}_ms": round((a[phase]["ns"] - b[phase]["ns"]) / n / 1e6, 4)
            for phase in ("compute_input", "compute_infer", "compute_output", "success")
        },
    }


async def _send_all(job, transform, x: torch.Tensor, starts: list[int], run_id: str, bar, out: dict) -> None:
    # aiohttp, not httpx: measured here, httpx's async pool stalled single-image requests at
    # concurrency 8 for 0.1-0.5 s every few hundred requests (p99 150 ms); aiohttp and a bare
    # asyncio client did not (p99 13-14 ms) against the same server.
    import aiohttp

    device = resolve_device(job.device)
    base = job.server.rstrip("/")
    url = f"{base}/v2/models/{job.model}/infer"
    pending = iter(range(len(starts)))
    timeout = aiohttp.ClientTimeout(total=job.timeout, connect=min(job.timeout, 10.0))
    connector = aiohttp.TCPConnector(limit=job.concurrency)
    async with aiohttp.ClientSession(headers=_headers(job), timeout=timeout, connector=connector) as session:
        await _check_model(session, job, base, tuple(transform_shape(transform, x, device)))
        before = await _stats(session, base, job.model)

        async def worker() -> None:
            for i in pending:
                xb = x[starts[i] : starts[i] + job.batch_size]
                t0 = time.perf_counter()
                with torch.inference_mode():
                    z = transform(xb.to(device)).float().cpu().numpy()
                try:
                    body, headers = encode_request(
                        z,
                        wire=job.wire,
                        request_id=f"{run_id}-{i}",
                        name=job.input_name,
                        outputs=(job.output,),
                    )
                except ValueError as e:
                    raise Stop(str(e)) from None
                obfuscate = time.perf_counter() - t0
                t1 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        status, answer, answer_headers = r.status, await r.read(), r.headers
                except (TimeoutError, aiohttp.ClientError) as e:
                    raise Stop(
                        f"the server at {job.server} stopped answering after {out['done']} of {len(starts)} "
                        f"requests ({type(e).__name__}{': ' + str(e) if str(e) else ''})"
                    ) from None
                latency = time.perf_counter() - t1
                if status >= 500:
                    out["status_5xx"] += 1
                    continue
                if status != 200:
                    raise Stop(f"the server refused request {i}: {status} {_server_error(answer)}")
                try:
                    _, outputs = decode_response(answer, answer_headers)
                    labels = outputs[job.output]
                    labels = labels.argmax(1) if labels.ndim == 2 else labels.reshape(-1)
                except (ProtocolError, KeyError) as e:
                    raise Stop(
                        f"request {i}: the server's answer is not a V2 response with {job.output!r} ({e})"
                    ) from None
                if len(labels) != len(xb):
                    raise Stop(f"request {i}: {len(labels)} labels for {len(xb)} images")
                out["labels"][i] = labels
                out["latency"].append(latency)
                out["obfuscate_s"] += obfuscate
                out["tensor_bytes"] += z.size * np.dtype(WIRE_DTYPES[job.wire]).itemsize
                out["body_bytes"] += len(body)
                out["done"] += 1
                bar.update(len(xb))

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(job.concurrency)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            out["wall_s"] = time.perf_counter() - t0
        out["server"] = _stats_delta(before, await _stats(session, base, job.model))


WIRE_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


def transform_shape(transform, x: torch.Tensor, device) -> tuple[int, ...]:
    with torch.inference_mode():
        return tuple(transform(x[:1].to(device)).shape[1:])


def _load(job: EdgeJob):
    from obfaudit.data.select import load_job_data
    from obfaudit.transforms import CheckedTransform, resolve_source, to_device

    if not job.obfnet.endswith(".onnx"):
        from obfaudit.models.io import model_paths

        if not any(p.exists() for p in model_paths(job.obfnet)):
            raise ObfauditError(f"--obfnet {job.obfnet}: no saved ObfNet or .onnx file there")
    device = str(resolve_device(job.device))
    subject = resolve_source(job.obfnet, device=device)
    info = subject.info or onnx_sidecar(job.obfnet)
    split_seed = info.get("seed", job.seed)
    _, test, attribute, task = load_job_data(job, seed=split_seed, n_test=job.n)
    transform = CheckedTransform(to_device(subject.transform, device), subject.name)
    return subject, transform, test, attribute, task, split_seed


def onnx_sidecar(path: str) -> dict:
    """The obfaudit sidecar ``obfaudit export`` stores in an ONNX file's metadata ({} if none)."""
    import json

    if not str(path).endswith(".onnx"):
        return {}
    try:
        import onnxruntime as ort

        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        return json.loads(meta.custom_metadata_map.get("obfaudit", "{}"))
    except Exception:  # noqa: BLE001 - metadata is optional; the graph itself was checked on load
        return {}


def run_edge(job: EdgeJob, *, log=lambda message: None) -> dict:
    """Obfuscate the test images, send them to the server, write ``edge.json`` and return its summary."""
    from tqdm.auto import tqdm

    from obfaudit.serve.jobs import require_live

    require_live()
    if job.wire not in WIRE:
        raise ObfauditError(f"--wire {job.wire}: use {', '.join(WIRE)}")
    out_dir = check_output_dir(job.out)
    subject, transform, test, attribute, task, split_seed = _load(job)
    starts = list(range(0, len(test), job.batch_size))
    run_id = secrets.token_hex(4)
    log(f"sending {len(test)} {test.name} images obfuscated by {subject.name} to {job.server} ({job.wire})")
    sent = {
        "labels": [None] * len(starts),
        "latency": [],
        "tensor_bytes": 0,
        "body_bytes": 0,
        "obfuscate_s": 0.0,
        "status_5xx": 0,
        "done": 0,
        "wall_s": 0.0,
        "server": None,
    }
    error = None
    with tqdm(total=len(test), desc="edge", unit="img", disable=not job.progress, leave=False) as bar:
        try:
            asyncio.run(_send_all(job, transform, test.x, starts, run_id, bar, sent))
        except Stop as e:
            error = str(e)
    done = [i for i, labels in enumerate(sent["labels"]) if labels is not None]
    if not done:
        raise ObfauditError(error or f"no request was answered ({sent['status_5xx']} failed on the server)")
    rows = torch.cat([torch.arange(starts[i], min(starts[i] + job.batch_size, len(test))) for i in done])
    predicted = torch.from_numpy(np.concatenate([sent["labels"][i] for i in done]))
    truth = test.labels[task][rows]
    latency_ms = np.asarray(sent["latency"]) * 1e3
    n = len(rows)
    summary = {
        "images": n,
        "requests": len(done),
        "wire": job.wire,
        "accuracy": int((predicted == truth).sum()) / n,
        "tensor_bytes_per_image": sent["tensor_bytes"] / n,
        "body_bytes_per_image": sent["body_bytes"] / n,
        "latency_ms": {
            "p50": float(np.percentile(latency_ms, 50)),
            "p95": float(np.percentile(latency_ms, 95)),
            "p99": float(np.percentile(latency_ms, 99)),
            "mean": float(latency_ms.mean()),
        },
        "images_per_s": n / max(sent["wall_s"], 1e-9),
        "requests_per_s": len(done) / max(sent["wall_s"], 1e-9),
        "wall_s": sent["wall_s"],
        "obfuscate_ms_per_image": 1e3 * sent["obfuscate_s"] / n,
        "status_5xx": sent["status_5xx"],
        "server_ms_per_request": sent["server"],
    }
    record = {
        "obfaudit_edge": 1,
        "run": run_id,
        "complete": error is None and not sent["status_5xx"],
        "obfnet": subject.name,
        "summary": summary,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(job).items() if k != "token"
        },
        "data": {
            "data": job.data,
            "data_root": str(job.data_root) if job.data_root else None,
            "attributes": str(job.attributes) if job.attributes else None,
            "size": job.size,
            "split": "test",
            "split_seed": split_seed,
            "attribute": attribute,
            "task": task,
            "n": len(test),
        },
        "requests": [
            {"id": f"{run_id}-{i}", "start": starts[i], "stop": min(starts[i] + job.batch_size, len(test))}
            for i in done
        ],
        "labels": {name: test.labels[name].tolist() for name in (task, attribute)},
    }
    write_json(out_dir / RECORD, record)
    if error is not None:  # what was answered before is in the record: a capture of it can be scored
        raise ObfauditError(f"{error}; the {len(done)} requests answered before are in {out_dir / RECORD}")
    if sent["status_5xx"]:
        raise ObfauditError(
            f"{sent['status_5xx']} requests failed on the server (5xx); the record is in {out_dir / RECORD}"
        )
    return {**summary, "record": str(out_dir / RECORD)}
