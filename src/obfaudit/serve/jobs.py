"""Settings of the live commands (serve, tap, edge, export), and the runners of serve and tap.

Light to import: the CLI builds its options from these dataclasses without torch; the web
stack and the models are imported only to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obfaudit.errors import ObfauditError


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

    import torch

    from obfaudit._io import resolve_device
    from obfaudit.serve.capture import CaptureWriter
    from obfaudit.serve.run import run_foreground

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
    from obfaudit.serve.capture import CaptureWriter
    from obfaudit.serve.run import parse_address, run_foreground
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
    try:
        run_foreground(
            create_tap_app(upstream, capture),
            host,
            port,
            lambda url: announce(f"tap on {url} -> {upstream}, capturing to {job.capture}; Ctrl-C stops"),
        )
    finally:  # stopped by Ctrl-C too: what it holds is on disk, and said
        capture.flush()
        announce(f"tap stopped: {capture.summary()}")


@dataclass(frozen=True, kw_only=True)
class EdgeJob:
    """Settings of ``obfaudit edge``."""

    obfnet: str
    """The obfuscator the device runs: a saved ObfNet (PyTorch) or its ONNX export (onnxruntime)."""
    server: str
    """The server's base URL, e.g. http://127.0.0.1:8000 (or a tap in front of it)."""
    model: str = "infnet"
    """The model's name on the server."""
    input_name: str = "z"
    """The model's input tensor name (obfaudit serve: z; a Triton or KServe model: its own)."""
    output: str = "label"
    """The output to read the class from: labels, or logits/probabilities (their argmax is taken)."""
    wire: str = "float32"
    """How the obfuscated tensors travel: float32, float16 or uint8 (the batch's range, 256 levels)."""
    batch_size: int = 64
    """Images per request."""
    concurrency: int = 1
    """Requests in flight at once."""
    n: int | None = None
    """Send the first N test images (default: all)."""
    token: str | None = None
    """Bearer token the server asks for (default: $OBFAUDIT_TOKEN)."""
    timeout: float = 30.0
    """Seconds to wait for one answer."""
    data: str = "colored-mnist"
    """colored-mnist, or a folder DIR with DIR/test/<class>/* images and DIR/attributes.csv."""
    attributes: Path | None = None
    """The attributes CSV of a data folder (default: DIR/attributes.csv)."""
    attribute: str | None = None
    """The sensitive attribute whose labels the record keeps (default: colour, else the CSV's first)."""
    size: int | None = None
    """Resize a folder's images to SIZE x SIZE."""
    data_root: Path | None = None
    """For MNIST data: a directory with full MNIST instead of the embedded subset."""
    seed: int = 0
    """Seeds the split when the ObfNet does not say which (an ONNX file without obfaudit's metadata)."""
    device: str = "cpu"
    """Where the PyTorch ObfNet runs: cpu, cuda, cuda:N or auto."""
    out: Path = Path("edge")
    """Directory for the run record (edge.json): the summary and what was sent, with its labels."""
    progress: bool = False
    """Show a progress bar (the CLI sets it on a terminal)."""


@dataclass(frozen=True, kw_only=True)
class ExportJob:
    """Settings of ``obfaudit export``."""

    obfnet: Path
    """The saved ObfNet (X, X.safetensors or X.json)."""
    onnx: Path
    """Where to write the ONNX graph."""
    check_images: int = 256
    """Random images in [0, 1] the parity check runs through both."""
    tolerance: float = 1e-4
    """Largest |ONNX - PyTorch| accepted."""
    timing_runs: int = 300
    """Single-image runs timed per runtime."""
    seed: int = 0
    """Seeds the parity check's images."""
