"""Running an app under uvicorn: in the foreground (the CLI) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

from obfaudit.errors import ObfauditError


def parse_address(text: str, *, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT``, on 127.0.0.1) -> (host, port); one line when it is neither."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ObfauditError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    return host, int(port)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests and benchmarks)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _config(app, host: str, port: int):
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def _bound(server) -> str:
    for s in server.servers:
        for sock in s.sockets:
            host, port = sock.getsockname()[:2]
            return f"http://{host}:{port}"
    return "?"


def run_foreground(app, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM; ``announce(url)`` once the socket is bound."""
    import uvicorn

    server = uvicorn.Server(_config(app, host, port))

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            announce(_bound(server))
        await task

    try:
        from uvicorn._compat import asyncio_run  # runs with the loop factory uvicorn itself would use
    except ImportError:

        def asyncio_run(coro, loop_factory=None):
            return asyncio.run(coro)

    try:
        asyncio_run(main(), loop_factory=server.config.get_loop_factory())
    except KeyboardInterrupt:  # uvicorn stopped gracefully on Ctrl-C, then passed the signal on
        return
    except OSError as e:
        raise ObfauditError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    if not server.started:
        raise ObfauditError(f"cannot listen on {host}:{port} (see the message above)")


class ServerThread:
    """``with ServerThread(app) as url:`` serves ``app`` on a free loopback port in a thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(_config(app, self.host, self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
