"""The Open Inference Protocol (KServe V2 REST) as bytes: requests and responses, JSON or with
the binary tensor data extension, and the uint8 wire format.

One module for the three peers (server, edge client, tap), so that what one writes the
others read. Plain numpy and json: no torch, no FastAPI, so the tap and tests stay light.

A binary request is a JSON header of ``Inference-Header-Content-Length`` bytes followed by
each binary input's raw little-endian bytes, in the order of ``inputs``; an input is binary
when its ``parameters.binary_data_size`` is set. Responses use the same layout when an
output asks for ``binary_data``. Errors are :class:`ProtocolError` carrying the HTTP status
(4xx) the server answers with.

uint8 on the wire: ``z ~= offset + scale * q``, with ``scale`` and ``offset`` sent as the
input's parameters (per request: the batch's own range). Only obfaudit's server reads
them; a Triton or KServe model takes the FP32 or FP16 forms.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

#: The header that marks a binary body and says how long its JSON part is.
HEADER_LENGTH = "Inference-Header-Content-Length"

#: Tensor datatypes (the protocol's names) and their numpy dtypes, little-endian.
DATATYPES: dict[str, np.dtype] = {
    "FP32": np.dtype("<f4"),
    "FP16": np.dtype("<f2"),
    "UINT8": np.dtype("u1"),
    "INT64": np.dtype("<i8"),
}
#: What the edge client's ``--wire`` names, as protocol datatypes.
WIRE = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8"}


class ProtocolError(ValueError):
    """A request or response that does not follow the protocol; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Tensor:
    """One named tensor of a request or response, as it was on the wire."""

    name: str
    datatype: str
    data: np.ndarray
    parameters: dict = field(default_factory=dict)

    def as_float32(self) -> np.ndarray:
        """The values as float32; uint8 is dequantised with the tensor's own scale and offset."""
        if self.datatype == "UINT8":
            scale, offset = _quantisation(self.parameters)
            return (offset + scale * self.data.astype(np.float32)).astype(np.float32, copy=False)
        return self.data.astype(np.float32, copy=False)


@dataclass
class InferRequest:
    """A decoded inference request."""

    id: str | None
    inputs: list[Tensor]
    outputs: list[dict]
    """The outputs asked for: ``{"name": ..., "binary": bool}`` (empty: all, as JSON)."""


# ----------------------------------------------------------------------------- quantisation


def quantize_uint8(z: np.ndarray) -> tuple[np.ndarray, dict]:
    """``z`` as uint8 over the batch's own range, with the parameters that undo it."""
    lo, hi = float(z.min()), float(z.max())
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    q = np.clip(np.rint((z - lo) / scale), 0, 255).astype(np.uint8)
    return q, {"scale": scale, "offset": lo}


def _quantisation(parameters: dict) -> tuple[float, float]:
    scale, offset = parameters.get("scale"), parameters.get("offset")
    for name, v in (("scale", scale), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ProtocolError(f"a UINT8 input needs a finite number in parameters.{name}")
    if scale <= 0:
        raise ProtocolError("a UINT8 input needs parameters.scale > 0")
    return float(scale), float(offset)


# ----------------------------------------------------------------------------- encoding


def encode_tensors(
    header: dict, tensors: list[Tensor], key: str, *, binary: bool = True
) -> tuple[bytes, dict[str, str]]:
    """(body, extra HTTP headers) of ``header`` with ``tensors`` under ``key`` (inputs or outputs)."""
    entries, blobs = [], []
    for t in tensors:
        entry = {"name": t.name, "datatype": t.datatype, "shape": list(t.data.shape)}
        params = dict(t.parameters)
        if binary:
            blob = np.ascontiguousarray(t.data, dtype=DATATYPES[t.datatype]).tobytes()
            params["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            entry["data"] = t.data.reshape(-1).tolist()
        if params:
            entry["parameters"] = params
        entries.append(entry)
    text = json.dumps({**header, key: entries}, allow_nan=False, separators=(",", ":")).encode()
    if not blobs:
        return text, {"Content-Type": "application/json"}
    return b"".join([text, *blobs]), {
        HEADER_LENGTH: str(len(text)),
        "Content-Type": "application/octet-stream",
    }


def encode_request(
    z: np.ndarray,
    *,
    wire: str = "float32",
    request_id: str | None = None,
    name: str = "z",
    outputs: tuple[str, ...] = ("label",),
) -> tuple[bytes, dict[str, str]]:
    """An inference request for batch ``z`` in the ``wire`` format (float32, float16, uint8),
    binary, asking for ``outputs`` as JSON."""
    if wire not in WIRE:
        raise ValueError(f"unknown wire format {wire!r}: use {', '.join(WIRE)}")
    datatype, params = WIRE[wire], {}
    if datatype == "UINT8":
        data, params = quantize_uint8(z)
    else:
        with np.errstate(over="ignore"):  # an overflow to inf is refused just below
            data = z.astype(DATATYPES[datatype])
        if not np.isfinite(data).all():
            raise ValueError(f"values beyond {wire}'s range; send them as float32")
    header = {"outputs": [{"name": o} for o in outputs]}
    if request_id is not None:
        header = {"id": request_id, **header}
    return encode_tensors(header, [Tensor(name, datatype, data, params)], "inputs")


# ----------------------------------------------------------------------------- decoding


def _split(body: bytes | bytearray, headers) -> tuple[dict, memoryview]:
    """(the JSON part, the binary rest) of a body."""
    raw = headers.get(HEADER_LENGTH) if headers is not None else None
    view = memoryview(body)
    if raw is None:
        n = len(body)
    else:
        try:
            n = int(raw)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH} must be an integer, got {raw[:40]!r}") from None
        if not 0 < n <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} is {n} but the body has {len(body)} bytes")
    try:
        doc = json.loads(bytes(view[:n]), parse_constant=_no_constant)
    except ProtocolError:
        raise
    except ValueError as e:  # JSONDecodeError, bad UTF-8, integers of more than 4,300 digits
        raise ProtocolError(f"malformed JSON: {str(e)[:120]}") from None
    except RecursionError:
        raise ProtocolError("malformed JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ProtocolError("the JSON body must be an object")
    return doc, view[n:]


def _no_constant(name: str):
    raise ProtocolError(f"malformed JSON: {name} is not a number")


def _shape(entry: dict, what: str, max_elements: int) -> tuple[int, ...]:
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or not 0 < len(shape) <= 8
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= max_elements for d in shape)
    ):
        raise ProtocolError(
            f"{what}: shape must be 1 to 8 integers from 0 to {max_elements}, got {str(shape)[:80]}"
        )
    return tuple(shape)


def _tensors(
    doc: dict, key: str, rest: memoryview, *, max_elements: int, max_json_elements: int = 1 << 20
) -> list[Tensor]:
    entries = doc.get(key)
    if not isinstance(entries, list) or not entries:
        raise ProtocolError(f"'{key}' must be a non-empty list")
    tensors, offset = [], 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError(f"{key}[{i}] must be an object with a name")
        what = f"{key[:-1]} {entry['name']!r}"
        datatype = entry.get("datatype")
        if datatype not in DATATYPES:
            raise ProtocolError(f"{what}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
        shape = _shape(entry, what, max_elements)
        count = math.prod(shape)
        if count > max_elements:
            raise ProtocolError(f"{what}: {count} elements, more than the {max_elements} allowed", 413)
        dtype = DATATYPES[datatype]
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError(f"{what}: parameters must be an object")
        size = params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
                raise ProtocolError(
                    f"{what}: binary_data_size {size!r} does not match shape {list(shape)} of {datatype} "
                    f"({count * dtype.itemsize} bytes)"
                )
            if offset + size > len(rest):
                raise ProtocolError(
                    f"{what}: truncated binary data ({len(rest) - offset} of {size} bytes present)"
                )
            data = np.frombuffer(rest[offset : offset + size], dtype=dtype).reshape(shape)
            offset += size
        else:
            if count > max_json_elements:
                raise ProtocolError(
                    f"{what}: {count} values as JSON; send more than {max_json_elements} as binary data", 413
                )
            data = _json_data(entry.get("data"), dtype, shape, what)
        tensors.append(Tensor(entry["name"], datatype, data, params))
    if offset != len(rest):
        raise ProtocolError(f"{len(rest) - offset} bytes of binary data follow the declared tensors")
    return tensors


def _json_data(data, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
    """JSON ``data`` (flat, or nested as ``shape``) of plain numbers as an array of ``shape``."""
    if not isinstance(data, list):
        raise ProtocolError(f"{what}: needs data (a list) or parameters.binary_data_size")
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(f"{what}: data must be numbers, nested as the shape says") from None
    count = math.prod(shape)
    if values.dtype.kind not in "iuf" and not (values.size == 0 and count == 0):
        raise ProtocolError(f"{what}: data must be plain numbers")
    if values.ndim != 1 and values.shape != shape:
        raise ProtocolError(f"{what}: data nested as {list(values.shape)}, the shape says {list(shape)}")
    if values.size != count:
        raise ProtocolError(f"{what}: {values.size} values for a shape of {count} elements")
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        exact = values.dtype.kind in "iu" or bool(np.all(values == np.rint(values)))
        if not exact or (values.size and (values.min() < info.min or values.max() > info.max)):
            raise ProtocolError(f"{what}: values must be integers in [{info.min}, {info.max}]")
    return values.astype(dtype).reshape(shape)


def decode_request(body: bytes | bytearray, headers=None, *, max_elements: int = 1 << 26) -> InferRequest:
    """Parse an inference request (JSON, or binary with ``headers``' length field).

    Anything wrong with it is a :class:`ProtocolError`, whatever part of the parsing finds it.
    """
    try:
        return _decode_request(body, headers, max_elements)
    except ProtocolError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError) as e:
        raise ProtocolError(f"malformed request ({type(e).__name__}: {str(e)[:120]})") from None


def _decode_request(body: bytes | bytearray, headers, max_elements: int) -> InferRequest:
    doc, rest = _split(body, headers)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    outputs = doc.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) and isinstance(o.get("parameters") or {}, dict)
        for o in outputs
    ):
        raise ProtocolError("'outputs' must be a list of objects with a name (and object parameters)")
    wanted = [
        {"name": o["name"], "binary": bool((o.get("parameters") or {}).get("binary_data"))} for o in outputs
    ]
    return InferRequest(request_id, _tensors(doc, "inputs", rest, max_elements=max_elements), wanted)


def decode_response(body: bytes | bytearray, headers=None) -> tuple[dict, dict[str, np.ndarray]]:
    """(the response's JSON, its outputs by name) of an inference response."""
    doc, rest = _split(body, headers)
    return doc, {t.name: t.data for t in _tensors(doc, "outputs", rest, max_elements=1 << 30)}


def error_body(message: str) -> bytes:
    """The protocol's error object."""
    return json.dumps({"error": message}).encode()
