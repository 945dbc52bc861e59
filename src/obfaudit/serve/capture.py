"""Captured traffic: the tensors a party saw on the wire, kept in one safetensors file.

The tap (an eavesdropper between edge and server) and the server's own log (the
honest-but-curious server) write the same format, which ``obfaudit audit --traffic``
reads. One file holds:

- ``z``: every captured row, float32, as the party decodes it (uint8 dequantised with the
  scale and offset that travel with it, so exactly what the party could compute);
- ``request``: for each row, the index of its request in the metadata;
- metadata ``obfaudit_capture``: JSON with who saw it (``seen_by``), where, and per request
  its id, model, wire datatype, rows and body bytes, and the labels the server answered
  with when the party saw the response.

Nothing is pickled. The file is rewritten atomically at most every ``flush_seconds`` and
when the capture closes, so a killed tap loses at most that much.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from obfaudit.errors import ObfauditError

KEY = "obfaudit_capture"
VERSION = 1


class CaptureWriter:
    """Collects decoded requests and writes them to ``path`` (thread-safe)."""

    def __init__(self, path: str | Path, *, seen_by: str, where: str = "", flush_seconds: float = 2.0):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise ObfauditError(f"--capture {self.path}: folder {self.path.parent} does not exist")
        self.meta = {"version": VERSION, "seen_by": seen_by, "where": where, "requests": [], "unparsed": 0}
        self._rows: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._write = threading.Lock()  # one writer at a time, newest snapshot last
        self._flusher: threading.Thread | None = None
        self._dirty = False
        self._last = time.monotonic()
        self.flush_seconds = flush_seconds

    def add(
        self, *, request_id: str | None, model: str, datatype: str, z: np.ndarray, body_bytes: int
    ) -> int:
        """Record one request's tensor; returns its index (to attach the answer to)."""
        with self._lock:
            self.meta["requests"].append(
                {
                    "id": request_id,
                    "model": model,
                    "datatype": datatype,
                    "rows": int(len(z)),
                    "shape": list(z.shape[1:]),
                    "body_bytes": int(body_bytes),
                    "time": round(time.time(), 6),
                }
            )
            self._rows.append(np.ascontiguousarray(z, dtype=np.float32))
            self._dirty = True
            return len(self.meta["requests"]) - 1

    def summary(self) -> str:
        """What it captured, in one line: requests, images, bytes on the wire, the file."""
        with self._lock:
            requests = self.meta["requests"]
            images = sum(r["rows"] for r in requests)
            sent = sum(r["body_bytes"] for r in requests)
            unparsed = self.meta["unparsed"]
        extra = f", {unparsed} unparsed" if unparsed else ""
        return f"captured {len(requests)} requests, {images} images, {sent:,} bytes{extra} -> {self.path}"

    def answer(self, index: int, labels: list[int]) -> None:
        """The labels the server returned for request ``index``, as the party saw them."""
        with self._lock:
            self.meta["requests"][index]["labels"] = [int(v) for v in labels]
            self._dirty = True

    def unparsed(self) -> None:
        """A request the party saw but could not read as an inference request."""
        with self._lock:
            self.meta["unparsed"] += 1
            self._dirty = True

    def maybe_flush(self) -> None:
        """Flush in a background thread when ``flush_seconds`` have passed (the caller goes on)."""
        if not self._dirty or time.monotonic() - self._last < self.flush_seconds:
            return
        if self._flusher is not None and self._flusher.is_alive():
            return
        self._last = time.monotonic()
        self._flusher = threading.Thread(target=self.flush, daemon=True)
        self._flusher.start()

    def flush(self) -> None:
        """Write everything captured so far (atomically: a reader sees the old or the new file)."""
        with self._write:
            self._flush()

    def _flush(self) -> None:
        from safetensors.numpy import save

        with self._lock:  # a snapshot (rows are never changed once added), so adding goes on meanwhile
            if not self._dirty and self.path.exists():
                return
            rows_seen, meta = list(self._rows), json.dumps(self.meta)
            self._dirty = False
            self._last = time.monotonic()
        # one file holds one tensor shape: the first one seen (requests of other shapes stay listed)
        keep = [i for i, r in enumerate(rows_seen) if r.shape[1:] == rows_seen[0].shape[1:]]
        z = np.concatenate([rows_seen[i] for i in keep]) if keep else np.zeros((0, 0), np.float32)
        request = np.concatenate(
            [np.full(len(rows_seen[i]), i, np.int64) for i in keep] or [np.zeros(0, np.int64)]
        )
        blob = save({"z": z, "request": request}, metadata={KEY: meta})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(self.path)


def read_capture(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(z, request index per row, metadata) of a capture file; one clear line if it is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ObfauditError(f"--traffic {path}: capture file not found")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})[KEY])
            z, request = f.get_tensor("z"), f.get_tensor("request")
    except (SafetensorError, KeyError, ValueError, OSError) as e:
        raise ObfauditError(f"--traffic {path}: not an obfaudit capture ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("version") != VERSION or len(z) != len(request):
        raise ObfauditError(f"--traffic {path}: not an obfaudit capture of version {VERSION}")
    return z, request, meta
