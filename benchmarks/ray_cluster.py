"""A two-node Ray cluster on this machine (loopback only), the smoke preset across it, and the serial
run's verdicts beside it.

Starts a head node (``ray start --head``) and a second node that joins it (``ray start --address``),
each with its own ``--num-cpus``, the head with its own temp dir, both on 127.0.0.1 (see
:data:`LOOPBACK`); runs ``obfaudit reproduce --preset smoke --executor ray --address 127.0.0.1:PORT``
and the same preset serially on one thread (as each Ray task runs), into fresh run directories;
checks that the stages ran on both nodes (the executor's ``ray: N stages ran on 2 nodes`` line) and
that every verdict is the serial run's; then stops both nodes, whatever happened. Every step has a
time limit.

    python benchmarks/ray_cluster.py [--cpus-per-node 1] [--keep DIR] [--save out.json]

On two real machines the same holds with two differences: the run directory must be on storage
that every node sees at the same path (each task writes its stage record there), and every node
needs the same obfaudit and torch installed (the tasks import them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 600  # seconds for each run of the preset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Ray replaces 127.0.0.1 by the machine's outward address wherever it resolves a node's address, so
#: that other machines can reach it; this cluster must stay on loopback. The head and the drivers run
#: with Ray's single-machine setting (their node address is then 127.0.0.1), and the second node, which
#: Ray refuses to start under that setting, with its address resolution left as given. Every process
#: authenticates with Ray's token (~/.ray/auth_token, made by the head when missing).
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
SECOND_NODE = (
    "import sys; import ray._private.services as s; s.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv = ['ray', *sys.argv[1:]]; main()"
)


def start_node(args: list[str], log: Path, *, head: bool) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group (stopping the group stops the node)."""
    command = [str(Path(sys.executable).parent / "ray")] if head else [sys.executable, "-c", SECOND_NODE]
    env = {**os.environ, **(LOOPBACK if head else {"RAY_AUTH_MODE": "token"})}
    return subprocess.Popen(
        [*command, "start", "--block", "--disable-usage-stats", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )


def stop(node: subprocess.Popen) -> None:
    if node.poll() is not None:
        return
    os.killpg(node.pid, signal.SIGTERM)
    try:
        node.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=10)


def wait_for_nodes(address: str, n: int, timeout: float = 90) -> list[dict]:
    """The alive nodes once ``n`` of them have joined (asked from a short-lived driver)."""
    probe = (
        "import json, ray; ray.init(address=ADDRESS, logging_level='ERROR', log_to_driver=False);"
        "print(json.dumps([{'id': x['NodeID'], 'cpus': x['Resources'].get('CPU', 0)} "
        "for x in ray.nodes() if x['Alive']])); ray.shutdown()"
    ).replace("ADDRESS", repr(address))
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **LOOPBACK},
        )
        nodes = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else []
        if len(nodes) >= n or time.monotonic() > deadline:
            return nodes
        time.sleep(2)


def reproduce(out: Path, *extra: str, threads: int | None = None) -> tuple[float, str]:
    env = {**os.environ, **LOOPBACK, "OBFAUDIT_NO_PROGRESS": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "obfaudit.cli", "reproduce", "--preset", "smoke", "--out", str(out), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=LIMIT)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0, done.stderr


def experiments(out: Path) -> dict:
    return {e["id"]: e for e in json.loads((out / "results.json").read_text())["experiments"]}


def headline(e: dict) -> list:
    m = e.get("metrics") or {}
    return [m.get(k) for k in ("feature_accuracy", "obfuscated_test_acc", "ssim")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus-per-node", type=int, default=1)
    p.add_argument("--keep", type=Path, help="keep the run directories and node logs under DIR")
    p.add_argument("--save", type=Path, help="write the comparison as JSON here")
    a = p.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="ray-cluster-"))
    for d in ("serial", "cluster"):
        shutil.rmtree(root / d, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    cpus = str(a.cpus_per_node)
    head = start_node(
        ["--head", "--port", str(port), "--num-cpus", cpus, "--include-dashboard=false",
         "--temp-dir", str(Path(tempfile.gettempdir()) / f"ray-head-{port}")],
        root / "head.log", head=True,
    )  # fmt: skip
    nodes: list[subprocess.Popen] = [head]
    try:
        if len(wait_for_nodes(address, 1)) < 1:
            raise SystemExit(f"the head node did not start: {(root / 'head.log').read_text()[-2000:]}")
        nodes.append(start_node(["--address", address, "--num-cpus", cpus], root / "worker.log", head=False))
        alive = wait_for_nodes(address, 2)
        if len(alive) < 2:
            raise SystemExit(f"the second node did not join: {(root / 'worker.log').read_text()[-2000:]}")
        print(f"cluster at {address}: {len(alive)} nodes, {cpus} CPU each", flush=True)
        cluster_s, log = reproduce(root / "cluster", "--executor", "ray", "--address", address)
    finally:
        for node in reversed(nodes):
            stop(node)
    spread = re.search(r"ray: (\d+) stages ran on (\d+) nodes \(([^)]*)\)", log)
    # on one thread, as each Ray task of a stage that declares one CPU: the same sums in the same order
    serial_s, _ = reproduce(root / "serial", threads=1)
    se, ce = experiments(root / "serial"), experiments(root / "cluster")
    s, c = ({k: e.get("verdict") for k, e in x.items()} for x in (se, ce))
    same = sum(s[k] == c.get(k) for k in s)
    metrics_same = sum(k in ce and headline(se[k]) == headline(ce[k]) for k in se)
    result = {
        "nodes": len(alive),
        "cpus_per_node": a.cpus_per_node,
        "stages_by_node": spread.group(3) if spread else None,
        "nodes_used": int(spread.group(2)) if spread else 1,
        "cluster_seconds": round(cluster_s, 1),
        "serial_seconds": round(serial_s, 1),
        "verdicts_same": same,
        "verdicts": len(s),
        "differ": {k: [s[k], c.get(k)] for k in s if s[k] != c.get(k)},
        "metrics_identical": metrics_same,
    }
    print(json.dumps(result, indent=1))
    if a.save:
        a.save.write_text(json.dumps(result, indent=1))
    if not spread or result["nodes_used"] < 2 or same != len(s):
        raise SystemExit("the two-node run did not use both nodes or did not give the serial verdicts")


if __name__ == "__main__":
    main()
