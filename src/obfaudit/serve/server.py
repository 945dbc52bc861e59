"""The server of the study's system: an InfNet behind the Open Inference Protocol (KServe V2).

``create_app`` builds the FastAPI app; ``obfaudit serve`` runs it under uvicorn. Routes:
``/v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}`` (metadata),
``/v2/models/{name}/ready``, ``/v2/models/{name}/stats`` (Triton's statistics extension:
where the time goes) and ``POST /v2/models/{name}/infer`` (JSON or binary tensors).

Every bad request gets a 4xx with ``{"error": ...}``: malformed JSON, wrong shape or
datatype, truncated binary data, NaN or Inf, a batch or body over the limits (413), a
missing or wrong bearer token (401), an unknown model (404). The model runs inline on the
event loop: a forward pass of the study's networks takes well under a millisecond per
image, less than a hop to a thread pool would add.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from torch import nn

from obfaudit.serve.capture import CaptureWriter
from obfaudit.serve.protocol import (
    InferRequest,
    ProtocolError,
    Tensor,
    decode_request,
    encode_tensors,
    error_body,
)

INPUT = "z"
OUTPUTS = ("label", "logits")
INPUT_DATATYPES = ("FP32", "FP16", "UINT8")


@dataclass
class Limits:
    """What one request may carry."""

    max_body: int = 64 << 20
    """Largest request body in bytes (413 beyond)."""
    max_batch: int = 1024
    """Most images in one request (413 beyond)."""


@dataclass
class Stats:
    """Counts and nanoseconds per phase, as Triton's statistics extension reports them."""

    phases: dict = field(
        default_factory=lambda: {
            k: {"count": 0, "ns": 0}
            for k in ("success", "fail", "compute_input", "compute_infer", "compute_output")
        }
    )
    inference_count: int = 0
    execution_count: int = 0

    def add(self, phase: str, t0: int) -> int:
        now = time.perf_counter_ns()
        self.phases[phase]["count"] += 1
        self.phases[phase]["ns"] += now - t0
        return now


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(error_body(message), status_code=status, media_type="application/json", headers=headers)


def check_batch(t: Tensor, shape: tuple[int, ...], limits: Limits) -> None:
    """Refuse an input that is not a finite batch of ``shape`` within the limits."""
    if t.name != INPUT:
        raise ProtocolError(f"unknown input {t.name!r}: this model takes {INPUT!r}")
    if t.datatype not in INPUT_DATATYPES:
        raise ProtocolError(f"input {INPUT!r} is {t.datatype}; this model takes {', '.join(INPUT_DATATYPES)}")
    if t.data.ndim != 1 + len(shape) or tuple(t.data.shape[1:]) != shape:
        raise ProtocolError(
            f"input {INPUT!r} has shape {list(t.data.shape)}; "
            f"this model takes [-1, {', '.join(map(str, shape))}]"
        )
    if not 1 <= len(t.data) <= limits.max_batch:
        raise ProtocolError(
            f"a batch of {len(t.data)} images; this server takes 1 to {limits.max_batch}",
            413 if len(t.data) else 400,
        )


def create_app(
    model: nn.Module,
    *,
    name: str,
    input_shape: tuple[int, ...],
    classes: int,
    token: str | None = None,
    limits: Limits | None = None,
    capture: CaptureWriter | None = None,
    info: dict | None = None,
):
    """The FastAPI app serving ``model`` (an InfNet in eval mode on the CPU or a GPU) as ``name``."""
    from obfaudit._version import __version__

    limits = limits or Limits()
    stats = Stats()
    shape = tuple(input_shape)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():  # the first call of each batch shape builds kernels: not on a client's clock
        for n in sorted({1, min(64, limits.max_batch)}):
            model(torch.zeros(n, *input_shape, device=device))
    max_elements = limits.max_batch * math.prod(shape)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if capture is not None:  # what the server saw, written before the process goes
            capture.flush()

    app = FastAPI(
        title="obfaudit InfNet server",
        version=__version__,
        description="Open Inference Protocol (KServe V2 REST) with the binary tensor data extension.",
        lifespan=lifespan,
    )

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return _error(400, "bad request: " + "; ".join(str(e.get("msg")) for e in exc.errors()))

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        got = request.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {token}".encode())

    def gate(request: Request, model_name: str):
        """The error response for an unauthorised request or an unknown model, else None."""
        if not authorised(request):
            return _error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        if model_name != name:
            return _error(404, f"unknown model {model_name!r}; this server has {name!r}")
        return None

    @app.get("/v2")
    async def server_metadata():
        return {
            "name": "obfaudit",
            "version": __version__,
            "extensions": ["binary_tensor_data", "statistics"],
        }

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    @app.get("/v2/models/{model_name}")
    async def model_metadata(model_name: str, request: Request):
        if (refused := gate(request, model_name)) is not None:
            return refused
        return {
            "name": name,
            "versions": ["1"],
            "platform": "pytorch",
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, *shape]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "logits", "datatype": "FP32", "shape": [-1, classes]},
            ],
            "parameters": {
                "input_datatypes": list(INPUT_DATATYPES),
                "uint8": "value = parameters.offset + parameters.scale * q",
                "max_batch": limits.max_batch,
                **({"arch": info.get("arch")} if info else {}),
            },
        }

    @app.get("/v2/models/{model_name}/ready")
    async def model_ready(model_name: str, request: Request):
        if (refused := gate(request, model_name)) is not None:
            return refused
        return {"name": name, "ready": True}

    @app.get("/v2/models/{model_name}/stats")
    async def model_stats(model_name: str, request: Request):
        if (refused := gate(request, model_name)) is not None:
            return refused
        return {
            "model_stats": [
                {
                    "name": name,
                    "version": "1",
                    "inference_count": stats.inference_count,
                    "execution_count": stats.execution_count,
                    "inference_stats": stats.phases,
                }
            ]
        }

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ProtocolError("Content-Length must be a number")
            if int(declared) > limits.max_body:
                raise ProtocolError(
                    f"a body of {declared} bytes; this server takes at most {limits.max_body}", 413
                )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body:
                raise ProtocolError(f"a body over {limits.max_body} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def respond(req: InferRequest, logits: torch.Tensor):
        values = {
            "label": logits.argmax(1).numpy().astype(np.int64),
            "logits": logits.numpy().astype(np.float32),
        }
        wanted = req.outputs or [{"name": n, "binary": False} for n in OUTPUTS]
        for o in wanted:
            if o["name"] not in values:
                raise ProtocolError(f"unknown output {o['name']!r}: this model has {', '.join(OUTPUTS)}")
        binary = any(o["binary"] for o in wanted)
        header = {"model_name": name, "model_version": "1", **({"id": req.id} if req.id is not None else {})}
        tensors = [
            Tensor(o["name"], "INT64" if o["name"] == "label" else "FP32", values[o["name"]]) for o in wanted
        ]
        body, headers = encode_tensors(header, tensors, "outputs", binary=binary)
        return Response(body, media_type=headers.pop("Content-Type"), headers=headers), values["label"]

    @app.post("/v2/models/{model_name}/infer")
    async def infer(model_name: str, request: Request):
        if (refused := gate(request, model_name)) is not None:
            stats.phases["fail"]["count"] += 1
            return refused
        t0 = start = time.perf_counter_ns()
        try:
            body = await read_body(request)
            req = decode_request(body, request.headers, max_elements=max_elements)
            if len(req.inputs) != 1:
                raise ProtocolError(f"{len(req.inputs)} inputs; this model takes one, {INPUT!r}")
            t = req.inputs[0]
            check_batch(t, shape, limits)
            z = np.require(t.as_float32(), np.float32, "CW")
            if not np.isfinite(z).all():
                raise ProtocolError(f"input {INPUT!r} holds NaN or infinite values")
            x = torch.from_numpy(z).to(device)
            t0 = stats.add("compute_input", t0)
            with torch.inference_mode():
                logits = model(x).float().cpu()
            t0 = stats.add("compute_infer", t0)
            response, labels = respond(req, logits)
            stats.add("compute_output", t0)
        except ProtocolError as e:
            stats.add("fail", start)
            return _error(e.status, str(e))
        stats.add("success", start)
        stats.inference_count += len(z)
        stats.execution_count += 1
        if capture is not None:
            i = capture.add(request_id=req.id, model=name, datatype=t.datatype, z=z, body_bytes=len(body))
            capture.answer(i, labels.tolist())
            capture.maybe_flush()
        return response

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):  # a bug of ours, never a bad payload
        return _error(500, f"internal error: {type(exc).__name__}")

    return app


def load_infnet_app(path: str, *, device: str = "cpu", name: str = "infnet", **kwargs):
    """(app, name, sidecar) serving a saved InfNet as ``name``."""
    from obfaudit.models import load_model

    model, info = load_model(path, device=device, role="infnet")
    kw = info.get("kwargs", {})
    shape = tuple(kw.get("input_shape", (1, 28, 28)))
    app = create_app(
        model, name=name, input_shape=shape, classes=int(kw.get("classes", 10)), info=info, **kwargs
    )
    return app, name, info
