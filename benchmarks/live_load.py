"""Bounded loopback load on the live system: edge -> (tap ->) server, on this machine's cores.

Starts ``obfaudit serve`` (and ``obfaudit tap``) as subprocesses on free 127.0.0.1 ports,
drives them with the edge client in this process, and prints one row per scenario:
images/s, requests/s, latency p50/p95/p99, bytes per image, server accuracy, 5xx count,
and where the time goes (the server's decode / infer / encode per request, from its
statistics endpoint; the rest of the latency is HTTP, the event loops and the client).
Every scenario is bounded: at most ``--n`` images per run, ``--repeats`` runs, a timeout
per request; the servers are stopped at the end.

    python benchmarks/live_load.py --models runs/demo/models [--save live.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from obfaudit._io import dumps
from obfaudit.serve.edge import run_edge
from obfaudit.serve.jobs import EdgeJob
from obfaudit.serve.run import free_port


def start(args: list[str], port: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OBFAUDIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": str(threads)}
    p = subprocess.Popen([sys.executable, "-m", "obfaudit.cli", *args], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return p
        except OSError:
            if p.poll() is not None:
                raise SystemExit(f"{args[0]} exited with {p.returncode}") from None
            time.sleep(0.1)
    p.kill()
    raise SystemExit(f"{args[0]} did not start")


def offline_accuracy(models: Path, obfnet: str, n: int) -> float:
    from obfaudit.data.select import load_task_data
    from obfaudit.models import load_model

    obf, info = load_model(models / obfnet, role="obfuscator")
    inf, _ = load_model(models / "infnet-cnn-colored-mnist", role="infnet")
    _, test, _, _ = load_task_data("colored-mnist", seed=info.get("seed", 0), n_test=n)
    with torch.inference_mode():
        pred = torch.cat([inf(obf(test.x[i : i + 64])).argmax(1) for i in range(0, len(test), 64)])
    return int((pred == test.labels["digit"]).sum()) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", type=Path, default=Path("runs/demo/models"), help="a run's models/ folder"
    )
    parser.add_argument("--obfnet", default="obfnet-mlp-b64-colored-mnist", help="the ObfNet's file stem")
    parser.add_argument("--n", type=int, default=1000, help="images per run (the test split has 1,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario; the median run is shown")
    parser.add_argument("--server-threads", type=int, default=1, help="PyTorch threads of the server")
    parser.add_argument("--save", type=Path, help="write the rows as JSON here")
    a = parser.parse_args()
    if not (a.models / "infnet-cnn-colored-mnist.json").exists():
        raise SystemExit(f"{a.models}: no infnet-cnn-colored-mnist; run 'make demo' (or pass --models)")
    torch.set_num_threads(1)  # the edge device: one thread, the other core is the server's
    sp, tp = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="live-load-"))
    server = start(
        ["serve", "--infnet", str(a.models / "infnet-cnn-colored-mnist"), "--port", str(sp), "--threads",
         str(a.server_threads)], sp, a.server_threads)  # fmt: skip
    tap = start(["tap", "--listen", f"127.0.0.1:{tp}", "--upstream", f"127.0.0.1:{sp}", "--capture",
                 str(work / "capture.safetensors")], tp, 1)  # fmt: skip
    scenarios = [
        ("batch 64, float32", {"batch_size": 64}),
        ("batch 64, float32, 2 in flight", {"batch_size": 64, "concurrency": 2}),
        ("batch 64, float16", {"batch_size": 64, "wire": "float16"}),
        ("batch 64, uint8", {"batch_size": 64, "wire": "uint8"}),
        ("batch 1, float32, 8 in flight", {"batch_size": 1, "concurrency": 8}),
        ("batch 1, uint8, 8 in flight", {"batch_size": 1, "concurrency": 8, "wire": "uint8"}),
        ("batch 64, float32, through the tap", {"batch_size": 64, "tap": True}),
    ]
    rows = []
    try:
        for name, kw in scenarios:
            url = f"http://127.0.0.1:{tp if kw.pop('tap', False) else sp}"
            runs = []
            for r in range(a.repeats):
                job = EdgeJob(
                    obfnet=str(a.models / a.obfnet), server=url, n=a.n, out=work / f"e{r}", timeout=10, **kw
                )
                runs.append(run_edge(job))
            runs.sort(key=lambda s: s["images_per_s"])
            s = runs[len(runs) // 2]
            srv = s["server_ms_per_request"] or {}
            row = {
                "scenario": name,
                "images_per_s": round(s["images_per_s"]),
                "requests_per_s": round(s["requests_per_s"]),
                "p50_ms": round(s["latency_ms"]["p50"], 2),
                "p95_ms": round(s["latency_ms"]["p95"], 2),
                "p99_ms": round(s["latency_ms"]["p99"], 2),
                "bytes_per_image": round(s["body_bytes_per_image"]),
                "accuracy": s["accuracy"],
                "status_5xx": sum(x["status_5xx"] for x in runs),
                "server_decode_ms": srv.get("compute_input_ms"),
                "server_infer_ms": srv.get("compute_infer_ms"),
                "server_encode_ms": srv.get("compute_output_ms"),
                "edge_obfuscate_ms_per_image": round(s["obfuscate_ms_per_image"], 4),
                "all_runs_images_per_s": [round(x["images_per_s"]) for x in runs],
            }
            rows.append(row)
            print(
                f"{name:<36} {row['images_per_s']:>6} img/s {row['requests_per_s']:>6} req/s  "
                f"p50 {row['p50_ms']:6.2f} p95 {row['p95_ms']:6.2f} p99 {row['p99_ms']:6.2f} ms  "
                f"{row['bytes_per_image']:>5} B/img  acc {row['accuracy']:.2%}  5xx {row['status_5xx']}  "
                f"server decode/infer/encode {row['server_decode_ms']}/{row['server_infer_ms']}/"
                f"{row['server_encode_ms']} ms",
                flush=True,
            )
    finally:
        for p in (tap, server):
            p.send_signal(signal.SIGINT)
            p.wait(timeout=20)
    offline = offline_accuracy(a.models, a.obfnet, a.n)
    print(f"offline InfNet(ObfNet(x)) accuracy on the same {a.n} images: {offline:.2%}")
    result = {
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}",
        "models": str(a.models),
        "obfnet": a.obfnet,
        "server_threads": a.server_threads,
        "offline_accuracy": offline,
        "rows": rows,
    }
    if a.save:
        a.save.write_text(dumps(result))
    print(json.dumps({"offline_accuracy": offline, "scenarios": len(rows)}))


if __name__ == "__main__":
    main()
