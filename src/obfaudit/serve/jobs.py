"""Settings and runners of ``obfaudit serve`` and ``obfaudit tap``: light to import (the CLI
builds its help from them), the web stack is imported only to run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from obfaudit.errors import ObfauditError
from obfaudit.serve.capture import CaptureWriter
from obfaudit.serve.run import parse_address, run_foreground


def require_live() -> None:
    """One line naming the extra when the live system's packages are missing."""
    try:
        import aiohttp  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ObfauditError(f"the live system needs {e.name}: pip install 'obfaudit[serve]'") from None


@dataclass(frozen=True, kw_only=True)
class ServeJob:
    """Settings of ``obfaudit serve``."""

    infnet: Path
    """The saved InfNet to serve (X, X.safetensors or X.json)."""
    name: str = "infnet"
    """The model's name in the URLs (/v2/models/NAME/infer)."""
    host: str = "127.0.0.1"
    """Address to listen on (loopback by default)."""
    port: int = 8000
    """Port to listen on (0: any free one, printed)."""
    token: str | None = None
    """Ask every model request for 'Authorization: Bearer TOKEN' (default: $OBFAUDIT_TOKEN, else none)."""
    max_body: int = 64 << 20
    """Largest request body in bytes (413 beyond)."""
    max_batch: int = 1024
    """Most images in one request (413 beyond)."""
    log: Path | None = None
    """Keep what the server receives in this capture file (the honest-but-curious server's view)."""
    threads: int | None = None
    """PyTorch threads for inference (default: PyTorch's own choice)."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto: where the InfNet runs."""


def serve(job: ServeJob, *, announce) -> None:
    """Run the server until interrupted; ``announce(line)`` once it listens."""
    import os

    from obfaudit._io import resolve_device

    require_live()
    from obfaudit.serve.server import Limits, load_infnet_app

    if job.threads:
        torch.set_num_threads(job.threads)
    token = job.token or os.environ.get("OBFAUDIT_TOKEN") or None
    capture = (
        CaptureWriter(job.log, seen_by="server", where=f"server {job.host}:{job.port}") if job.log else None
    )
    app, name, info = load_infnet_app(
        str(job.infnet),
        device=str(resolve_device(job.device)),
        name=job.name,
        token=token,
        limits=Limits(max_body=job.max_body, max_batch=job.max_batch),
        capture=capture,
    )
    try:
        run_foreground(
            app,
            job.host,
            job.port,
            lambda url: announce(
                f"serving {info.get('arch')} as {name!r} on {url}/v2/models/{name}/infer"
                f"{' (bearer token required)' if token else ''}; Ctrl-C stops"
            ),
        )
    finally:
        if capture is not None:
            capture.flush()


@dataclass(frozen=True, kw_only=True)
class TapJob:
    """Settings of ``obfaudit tap``."""

    listen: str = "127.0.0.1:8080"
    """HOST:PORT the edge connects to instead of the server."""
    upstream: str
    """HOST:PORT (or http://HOST:PORT) of the server the traffic goes on to."""
    capture: Path
    """The capture file (safetensors) the tensors seen are written to."""
    flush_seconds: float = 2.0
    """Rewrite the capture file at most this often while traffic flows (and when the tap stops)."""


def tap(job: TapJob, *, announce) -> None:
    """Run the tap until interrupted; ``announce(line)`` once it listens."""
    require_live()
    from obfaudit.serve.tap import create_tap_app

    host, port = parse_address(job.listen, what="--listen")
    upstream = (
        job.upstream
        if "://" in job.upstream
        else "http://{}:{}".format(*parse_address(job.upstream, what="--upstream"))
    )
    capture = CaptureWriter(
        job.capture, seen_by="tap", where=f"tap {host}:{port} -> {upstream}", flush_seconds=job.flush_seconds
    )
    capture.flush()  # an empty capture now: a bad path fails before any traffic
    run_foreground(
        create_tap_app(upstream, capture),
        host,
        port,
        lambda url: announce(f"tap on {url} -> {upstream}, capturing to {job.capture}; Ctrl-C stops"),
    )
    capture.flush()
