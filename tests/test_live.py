"""The live system on loopback: protocol, a bad-payload corpus, edge -> tap -> server end to end,
a server killed mid-run, the ONNX export and the audit of captured traffic.

Servers start and stop inside the tests, on free 127.0.0.1 ports; every client run is
bounded in requests and time.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from obfaudit.models import create_model, save_model
from obfaudit.serve.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    Tensor,
    decode_request,
    decode_response,
    encode_request,
    encode_tensors,
)
from obfaudit.serve.run import ServerThread, free_port
from tests.conftest import run_cli

SHAPE = (3, 28, 28)
N = 48  # test images the edge sends


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """An untrained InfNet-CNN and ObfNet-MLP (what they compute need not be good, only the same)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(create_model("infnet_cnn", input_shape=SHAPE), root / "inf", dataset="colored-mnist", seed=0)
    save_model(
        create_model("obfnet_mlp", input_shape=SHAPE, bottleneck=16),
        root / "obf",
        dataset="colored-mnist",
        seed=0,
    )
    return root


# ----------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("wire", ["float32", "float16", "uint8"])
def test_every_wire_format_decodes_to_what_was_sent(wire):
    z = np.random.default_rng(0).random((5, *SHAPE), dtype=np.float32) * 3
    body, headers = encode_request(z, wire=wire, request_id="r1")
    req = decode_request(body, headers)
    got = req.inputs[0].as_float32()
    assert req.id == "r1" and req.outputs == [{"name": "label", "binary": False}]
    tolerance = {"float32": 0, "float16": 2e-3, "uint8": 3 / 255 / 2 + 1e-6}[wire]
    assert np.abs(got - z).max() <= tolerance
    size = {"float32": 4, "float16": 2, "uint8": 1}[wire] * z.size
    assert len(body) - int(headers[HEADER_LENGTH]) == size


def test_json_tensors_and_binary_outputs_round_trip():
    labels = np.array([3, 1, 4], dtype=np.int64)
    body, headers = encode_tensors({"id": "x"}, [Tensor("label", "INT64", labels)], "outputs", binary=False)
    doc, outputs = decode_response(body, headers)
    assert doc["id"] == "x" and outputs["label"].tolist() == [3, 1, 4]
    body, headers = encode_tensors({}, [Tensor("label", "INT64", labels)], "outputs")
    assert decode_response(body, headers)[1]["label"].tolist() == [3, 1, 4]
    with pytest.raises(ValueError, match="float16"):
        encode_request(np.full((1, 2), 1e6, np.float32), wire="float16")
    with pytest.raises(ProtocolError, match="not a number"):
        decode_request(b'{"inputs": [{"name": "z", "datatype": "FP32", "shape": [1], "data": [NaN]}]}')


# ----------------------------------------------------------------------------- the bad-payload corpus


def _binary(z: np.ndarray, datatype="FP32", size=None, header_extra=None, body_cut=0, trailing=b""):
    blob = z.astype({"FP32": "<f4", "FP16": "<f2", "UINT8": "u1", "INT64": "<i8"}[datatype]).tobytes()
    entry = {
        "name": "z",
        "datatype": datatype,
        "shape": list(z.shape),
        "parameters": {"binary_data_size": len(blob) if size is None else size},
    }
    text = json.dumps({"inputs": [entry], **(header_extra or {})}).encode()
    body = text + blob
    return body[: len(body) - body_cut] + trailing, {HEADER_LENGTH: str(len(text))}


def _good():
    return np.random.default_rng(1).random((2, *SHAPE), dtype=np.float32)


def _nan():
    z = _good()
    z[0, 0, 0, 0] = np.nan
    return z


def _corpus():
    """(name, method, path, body, headers, expected status)."""
    auth = {"Authorization": "Bearer secret"}
    infer = "/v2/models/infnet/infer"
    body, h = _binary(_good())
    huge_header = {**auth, "Content-Length": str(10**12)}
    return [
        ("wrong shape", "POST", infer, *_binary(np.zeros((2, 1, 28, 28), np.float32)), 400),
        ("wrong rank", "POST", infer, *_binary(np.zeros((2, 3, 28), np.float32)), 400),
        ("wrong dtype", "POST", infer, *_binary(np.zeros((2, *SHAPE)), "INT64"), 400),
        (
            "unknown dtype",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP64","shape":[1],"data":[1]}]}',
            {},
            400,
        ),
        ("truncated binary", "POST", infer, *_binary(_good(), body_cut=100), 400),
        ("size disagrees", "POST", infer, *_binary(_good(), size=12), 400),
        ("trailing bytes", "POST", infer, *_binary(_good(), trailing=b"xx"), 400),
        ("header past the body", "POST", infer, body, {HEADER_LENGTH: str(len(body) + 5)}, 400),
        ("header not a number", "POST", infer, body, {HEADER_LENGTH: "many"}, 400),
        ("NaN in binary", "POST", infer, *_binary(_nan()), 400),
        ("Inf in float16", "POST", infer, *_binary(np.full((1, *SHAPE), np.inf, np.float32), "FP16"), 400),
        (
            "NaN in JSON",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[1,3,28,28],"data":[NaN]}]}',
            {},
            400,
        ),
        ("uint8 without scale", "POST", infer, *_binary(np.zeros((1, *SHAPE)), "UINT8"), 400),
        ("malformed JSON", "POST", infer, b'{"inputs": [', {}, 400),
        (
            "output parameters a list",
            "POST",
            infer,
            *_binary(_good(), header_extra={"outputs": [{"name": "label", "parameters": [1]}]}),
            400,
        ),
        (
            "empty dimension, huge other",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[0,9223372036854775807],"data":[]}]}',
            {},
            400,
        ),
        (
            "integer too large",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[1],"data":[1' + b"0" * 400 + b"]}]}",
            {},
            400,
        ),
        (
            "integer of 5,000 digits",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[1],"data":[1' + b"0" * 5000 + b"]}]}",
            {},
            400,
        ),
        (
            "strings as data",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[1,3,28,28],"data":["1.5"]}]}',
            {},
            400,
        ),
        (
            "data nested wrong",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[2,3],"data":[[1,2],[3,4],[5,6]]}]}',
            {},
            400,
        ),
        ("JSON not an object", "POST", infer, b"[1, 2]", {}, 400),
        ("no inputs", "POST", infer, b'{"outputs": []}', {}, 400),
        (
            "wrong input name",
            "POST",
            infer,
            b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,28,28],"data":[]}]}',
            {},
            400,
        ),
        (
            "too few values",
            "POST",
            infer,
            b'{"inputs":[{"name":"z","datatype":"FP32","shape":[1,3,28,28],"data":[1,2]}]}',
            {},
            400,
        ),
        (
            "unknown output",
            "POST",
            infer,
            *_binary(_good(), header_extra={"outputs": [{"name": "secret"}]}),
            400,
        ),
        ("empty batch", "POST", infer, *_binary(np.zeros((0, *SHAPE), np.float32)), 400),
        ("batch over the limit", "POST", infer, *_binary(np.zeros((9, *SHAPE), np.float32)), 413),
        ("body over the limit", "POST", infer, b"x" * 200_001, {}, 413),
        ("huge declared size", "POST", infer, None, huge_header, 413),
        ("unknown model", "POST", "/v2/models/other/infer", body, h, 404),
        ("unknown path", "GET", "/v2/nothing", None, {}, 404),
        ("GET on infer", "GET", infer, None, {}, 405),
        ("missing token", "POST", infer, body, {**h, "Authorization": ""}, 401),
        ("wrong token", "POST", infer, body, {**h, "Authorization": "Bearer guess"}, 401),
        ("metadata without token", "GET", "/v2/models/infnet", None, {"Authorization": ""}, 401),
    ]


def _request(url: str, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = {"Authorization": "Bearer secret", **headers}
        headers = {k: v for k, v in headers.items() if v != ""}
        if "Content-Length" in headers and body is None:  # only the header: the server must not wait
            conn.putrequest(method, path)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
        else:
            conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def small_server():
    from obfaudit.serve.server import Limits, create_app

    torch.manual_seed(0)
    model = create_model("infnet_cnn", input_shape=SHAPE)
    app = create_app(
        model,
        name="infnet",
        input_shape=SHAPE,
        classes=10,
        token="secret",
        limits=Limits(max_body=200_000, max_batch=8),
    )
    with ServerThread(app) as url:
        yield url, model


def test_every_bad_payload_gets_a_4xx_with_a_json_error(small_server):
    url, _ = small_server
    answers = {}
    for name, method, path, body, headers, status in _corpus():
        got, text = _request(url, method, path, body, headers)
        answers[name] = (got, text[:120])
        assert got == status, (name, got, text[:200])
        assert "error" in json.loads(text), name
    assert all(400 <= s < 500 for s, _ in answers.values())
    # ... and the server still answers a good request, and counted the refusals
    body, headers = _binary(_good())
    status, text = _request(url, "POST", "/v2/models/infnet/infer", body, headers)
    assert status == 200
    status, stats = _request(url, "GET", "/v2/models/infnet/stats", None, {})
    assert json.loads(stats)["model_stats"][0]["inference_stats"]["fail"]["count"] >= 20


def test_server_answers_what_the_model_computes(small_server):
    url, model = small_server
    z = _good()
    for wire in ("float32", "uint8"):
        body, headers = encode_request(z, wire=wire, outputs=("logits", "label"))
        status, text = _request(url, "POST", "/v2/models/infnet/infer", body, headers)
        assert status == 200
        doc, outputs = decode_response(text, {})
        sent = decode_request(body, headers).inputs[0].as_float32()
        with torch.inference_mode():
            want = model(torch.from_numpy(sent.copy())).numpy()
        np.testing.assert_allclose(outputs["logits"], want, rtol=1e-5, atol=1e-6)
        assert outputs["label"].tolist() == want.argmax(1).tolist()
    status, meta = _request(url, "GET", "/v2/models/infnet", None, {})
    assert json.loads(meta)["inputs"][0]["shape"] == [-1, *SHAPE]
    assert _request(url, "GET", "/v2/health/ready", None, {"Authorization": ""})[0] == 200


# ----------------------------------------------------------------------------- end to end


def _start(*args: str, port: int) -> subprocess.Popen:
    """``obfaudit ARGS`` in the background, once it listens on ``port`` (20 s at most)."""
    env = {**os.environ, "OBFAUDIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "obfaudit.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise AssertionError(f"{args[0]} exited: {p.stderr.read()}")
        try:
            if _request(f"http://127.0.0.1:{port}", "GET", "/v2/health/live", None, {})[0] == 200:
                return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise AssertionError(f"{args[0]} did not listen on {port}")


def _stop(p: subprocess.Popen, sig=signal.SIGINT) -> str:
    p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    p.stdout_text = out  # what it announced on stdout after listening
    return err


def _offline_accuracy(models: Path, batch: int) -> float:
    from obfaudit.data.select import load_task_data
    from obfaudit.models import load_model

    obf, _ = load_model(models / "obf", role="obfuscator")
    inf, _ = load_model(models / "inf", role="infnet")
    _, test, _, _ = load_task_data("colored-mnist", seed=0, n_test=N)
    with torch.inference_mode():
        pred = torch.cat([inf(obf(test.x[i : i + batch])).argmax(1) for i in range(0, N, batch)])
    return int((pred == test.labels["digit"]).sum()) / N


def _main(capsys, *args) -> tuple[int, str]:
    """``obfaudit ARGS`` in this process (error paths: no interpreter start-up to wait for)."""
    from obfaudit.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _one_error(err: str) -> bool:
    """One error line (progress lines aside) and no traceback."""
    return (
        sum(line.startswith("obfaudit: error") for line in err.splitlines()) == 1 and "Traceback" not in err
    )


@pytest.mark.slow
def test_edge_through_tap_to_server_then_audit_the_capture(models, tmp_path, capsys):
    sp, tp = free_port(), free_port()
    server = _start(
        "serve",
        "--infnet",
        models / "inf",
        "--port",
        sp,
        "--token",
        "s3",
        "--log",
        tmp_path / "server.safetensors",
        port=sp,
    )
    try:
        tap = _start("tap", "--listen", f"127.0.0.1:{tp}", "--upstream", f"127.0.0.1:{sp}", "--capture",
                     tmp_path / "cap.safetensors", port=tp)  # fmt: skip
        try:
            r = run_cli("edge", "--obfnet", models / "obf", "--server", f"http://127.0.0.1:{tp}", "--n", N,
                        "--batch-size", 16, "--out", tmp_path / "edge", "--json", "--timeout", 20,
                        env={"OBFAUDIT_TOKEN": "s3"}, timeout=120)  # fmt: skip
            assert r.returncode == 0, r.stderr
            summary = json.loads(r.stdout)
            # ONNX on the device, straight to the server, uint8 on the wire
            r = run_cli("export", "--obfnet", models / "obf", "--onnx", tmp_path / "obf.onnx", "--json",
                        "--timing-runs", 20)  # fmt: skip
            assert r.returncode == 0, r.stderr
            export = json.loads(r.stdout)
            r = run_cli("edge", "--obfnet", tmp_path / "obf.onnx", "--server", f"http://127.0.0.1:{sp}", "--n", N,
                        "--batch-size", 16, "--wire", "uint8", "--token", "s3", "--out", tmp_path / "edge8",
                        "--json")  # fmt: skip
            assert r.returncode == 0, r.stderr
            summary8 = json.loads(r.stdout)
            no_token = _main(capsys, "edge", "--obfnet", models / "obf", "--server", f"http://127.0.0.1:{sp}",
                             "--n", 4, "--out", tmp_path / "e0")  # fmt: skip
        finally:
            tap_err = _stop(tap)
    finally:
        _stop(server)
    assert summary["images"] == N and summary["requests"] == 3 and summary["status_5xx"] == 0
    assert summary["accuracy"] == _offline_accuracy(models, 16)
    assert summary["tensor_bytes_per_image"] == 4 * math.prod(SHAPE)
    assert set(summary["latency_ms"]) == {"p50", "p95", "p99", "mean"} and summary["images_per_s"] > 0
    assert summary["server_ms_per_request"]["requests"] == 3
    assert export["parity_max_abs_diff"] <= 1e-4 and export["onnx_bytes"] > 0
    assert export["latency_single_thread"]["onnxruntime"]["median_ms"] > 0
    assert summary8["tensor_bytes_per_image"] == math.prod(SHAPE)
    assert abs(summary8["accuracy"] - summary["accuracy"]) <= 2 / N  # 256 levels barely move an argmax
    assert no_token[0] == 1 and "401" in no_token[1] and _one_error(no_token[1])
    assert "Traceback" not in tap_err and "error" not in tap_err
    stopped = r"tap stopped: captured [1-9]\d* requests, [1-9]\d* images, [\d,]+ bytes"
    assert re.search(stopped, tap.stdout_text), tap.stdout_text
    from obfaudit.serve.capture import read_capture

    z, request, meta = read_capture(tmp_path / "server.safetensors")  # the server's own view: both runs
    assert meta["seen_by"] == "server" and len(z) == 2 * N and len(meta["requests"]) == 6
    assert {r["datatype"] for r in meta["requests"]} == {"FP32", "UINT8"}

    # The eavesdropper's capture, scored with the edge's record
    audit = tmp_path / "audit"
    r = run_cli("audit", "--transform", models / "obf", "--traffic", tmp_path / "cap.safetensors",
                "--edge-record", tmp_path / "edge" / "edge.json", "--attack", "tsne", "--n-tsne", 50,
                "--out", audit, "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    results = json.loads((audit / "results.json").read_text())
    t = results["traffic"]
    assert t["seen_by"] == "tap" and t["tensors"] == N and t["requests_of_this_run"] == 3
    assert t["answers_seen"] == N and t["answers_accuracy"] == summary["accuracy"]
    assert results["dataset"]["test"] == N and list(results["verdicts"]) == ["obf"]  # no controls
    assert "Who saw what" in (audit / "report.html").read_text()
    # a server attack on the eavesdropper's view is refused; so is a record of another run
    code, err = _main(capsys, "audit", "--transform", models / "obf", "--traffic", tmp_path / "cap.safetensors",
                      "--edge-record", tmp_path / "edge" / "edge.json", "--attack", "recnet", "--out", tmp_path / "a2")  # fmt: skip
    assert code == 1 and "server attack" in err
    code, err = _main(capsys, "audit", "--transform", models / "obf", "--traffic", tmp_path / "cap.safetensors",
                      "--edge-record", tmp_path / "edge8" / "edge.json", "--out", tmp_path / "a3")  # fmt: skip
    assert code == 1 and "none of the" in err


@pytest.mark.slow
def test_server_killed_mid_run_stops_the_edge_with_one_line(models, tmp_path):
    port = free_port()
    server = _start("serve", "--infnet", models / "inf", "--port", port, port=port)
    edge = subprocess.Popen(
        [sys.executable, "-m", "obfaudit.cli", "edge", "--obfnet", str(models / "obf"), "--server",
         f"http://127.0.0.1:{port}", "--batch-size", "1", "--out", str(tmp_path / "e"), "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OBFAUDIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once the edge is sending
            status, text = _request(f"http://127.0.0.1:{port}", "GET", "/v2/models/infnet/stats", None, {})
            if json.loads(text)["model_stats"][0]["inference_stats"]["success"]["count"] >= 5:
                break
            assert edge.poll() is None, edge.stderr.read()
            time.sleep(0.05)
        server.kill()
        server.wait(timeout=10)
        _, err = edge.communicate(timeout=60)
    finally:
        for p in (server, edge):
            if p.poll() is None:
                p.kill()
    assert edge.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("obfaudit: error")]
    assert len(lines) == 1 and "stopped answering after" in lines[0], err
    assert "Traceback" not in err
    record = json.loads((tmp_path / "e" / "edge.json").read_text())  # what was answered is kept
    assert record["complete"] is False and record["summary"]["requests"] >= 5


def test_live_commands_refuse_bad_arguments_in_one_line(models, tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"not a capture")
    (tmp_path / "edge.json").write_text("{}")
    unreachable = f"http://127.0.0.1:{free_port()}"
    for args, text in (
        (["edge", "--obfnet", tmp_path / "none", "--server", unreachable], "no saved ObfNet"),
        (["edge", "--obfnet", models / "obf", "--server", unreachable, "--n", 4], "cannot reach the server"),
        (
            ["tap", "--listen", "nowhere", "--upstream", "127.0.0.1:1", "--capture", tmp_path / "c"],
            "HOST:PORT",
        ),
        (["audit", "--transform", models / "obf", "--traffic", tmp_path / "missing"], "go together"),
        (
            [
                "audit",
                "--transform",
                models / "obf",
                "--traffic",
                tmp_path / "missing",
                "--edge-record",
                tmp_path / "edge.json",
            ],
            "not found",
        ),
        (
            [
                "audit",
                "--transform",
                models / "obf",
                "--traffic",
                tmp_path / "bad.safetensors",
                "--edge-record",
                tmp_path / "edge.json",
            ],
            "not an obfaudit capture",
        ),
    ):
        out = [] if args[0] == "tap" else ["--out", tmp_path / "o"]
        code, err = _main(capsys, *args, *out)
        assert code == 1 and text in err and _one_error(err), err
