"""The eavesdropper: a proxy on the wire between edge and server that records what passes.

It forwards every request unchanged to the upstream server and every answer back, and
keeps, from each inference request it can read, the tensor sent and the labels the server
answered with (:mod:`.capture`). A request it cannot read is still forwarded (a passive
tap changes nothing) and counted. An unreachable upstream is answered with 502.
"""

from __future__ import annotations

import contextlib
import re

from obfaudit.serve.capture import CaptureWriter
from obfaudit.serve.protocol import decode_request, decode_response, error_body

INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
#: Headers that belong to one hop, not to the message (RFC 9110 section 7.6.1), plus the ones httpx sets.
HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
}
#: Response headers the tap's own server writes itself (else they would appear twice).
OWN = {"date", "server"}


def _end_to_end(headers) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop ones, including those the Connection header names."""
    named = {t.strip().lower() for k, v in headers.items() if k.lower() == "connection" for t in v.split(",")}
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP and k.lower() not in named]


def _capture(capture: CaptureWriter, model: str, body: bytes, headers) -> int | None:
    try:
        req = decode_request(body, headers)
        t = req.inputs[0]
        return capture.add(
            request_id=req.id, model=model, datatype=t.datatype, z=t.as_float32(), body_bytes=len(body)
        )
    except Exception:  # noqa: BLE001 - a passive tap forwards whatever it cannot read
        capture.unparsed()
        return None


def create_tap_app(upstream: str, capture: CaptureWriter, *, timeout: float = 60.0):
    """A Starlette app forwarding everything to ``upstream`` (``http://host:port``) and capturing."""

    import aiohttp
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    session: aiohttp.ClientSession | None = None
    base = upstream.rstrip("/")

    async def forward(request: Request) -> Response:
        body = await request.body()
        index = None
        match = INFER.match(request.url.path)
        if request.method == "POST" and match:
            index = _capture(capture, match.group(1), body, request.headers)
        headers = _end_to_end(request.headers)
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            async with session.request(request.method, url, headers=headers, data=body) as r:
                status, content, answer_headers = r.status, await r.read(), r.headers
        except (TimeoutError, aiohttp.ClientError) as e:
            return Response(
                error_body(f"tap: upstream {upstream} unreachable ({type(e).__name__})"),
                status_code=502,
                media_type="application/json",
            )
        if index is not None and status == 200:
            try:
                _, outputs = decode_response(content, answer_headers)
                if "label" in outputs:
                    capture.answer(index, outputs["label"].reshape(-1).tolist())
            except Exception:  # noqa: BLE001 - an answer it cannot read is still passed on
                pass
        capture.maybe_flush()
        response = Response(content, status_code=status)
        response.raw_headers = [(b"content-length", str(len(content)).encode())] + [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in _end_to_end(answer_headers)
            if k.lower() not in OWN
        ]
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app):
        nonlocal session
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout), connector=connector, auto_decompress=False
        ) as s:
            session = s
            try:
                yield
            finally:
                capture.flush()

    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)
