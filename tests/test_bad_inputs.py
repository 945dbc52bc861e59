"""Bad and edge inputs, as a careful user would try them: every one gets one clear line and
a non-zero exit (1: a problem with inputs or files; 2: bad arguments), or works correctly.

Each case runs the real CLI in a subprocess on tiny data the test makes.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from obfaudit.models import create_model, save_model
from tests.conftest import run_cli, write_idx


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Untrained models of each kind, damaged copies, data files and user transforms."""
    d = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    save_model(
        create_model("infnet_mlp", input_shape=(3, 28, 28)), d / "infnet", dataset="colored-mnist", seed=0
    )
    save_model(
        create_model("obfnet_mlp", input_shape=(3, 28, 28), bottleneck=8),
        d / "obfnet",
        dataset="colored-mnist",
        seed=0,
    )
    side = json.loads((d / "obfnet.json").read_text())
    for name, change in {
        "huge": {"kwargs": {**side["kwargs"], "bottleneck": 10**12}},
        "foreign": {"dataset": "cifar-100"},
        "seedless": {"seed": "abc"},
        "unsigned": {"sha256": None},
    }.items():
        (d / f"{name}.safetensors").write_bytes((d / "obfnet.safetensors").read_bytes())
        (d / f"{name}.json").write_text(json.dumps({**side, **change}))
    (d / "a-file").write_text("not a directory")
    # full-MNIST directories with one bad file each
    rng = np.random.default_rng(0)
    for case in ("magic", "dtype", "truncated", "legacy"):
        raw = d / case / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for prefix, n in (("train", 30), ("t10k", 20)):
            write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    images = "train-images-idx3-ubyte"
    (d / "magic/MNIST/raw" / images).write_bytes(
        b"\x12\x34" + (d / "magic/MNIST/raw" / images).read_bytes()[2:]
    )
    blob = bytearray((d / "dtype/MNIST/raw" / images).read_bytes())
    blob[2] = 0x0D  # float32
    (d / "dtype/MNIST/raw" / images).write_bytes(bytes(blob))
    (d / "truncated/MNIST/raw" / images).write_bytes((d / "truncated/MNIST/raw" / images).read_bytes()[:5000])
    (d / "legacy/MNIST/raw" / images).unlink()
    (d / "legacy/MNIST/processed").mkdir()
    (d / "legacy/MNIST/processed/training.pt").write_bytes(b"\x80\x04legacy")
    # an image folder with a PNG whose header declares 40000 x 40000 pixels
    for split in ("train", "val"):
        for c in ("a", "b"):
            (d / "bomb" / split / c).mkdir(parents=True)
            (d / "bomb" / split / c / "x.png").write_bytes(_png(40000, 40000))
    # user transforms, each broken in its own way
    (d / "usertf.py").write_text(
        textwrap.dedent("""
        import numpy as np
        import torch

        def boom(x):
            raise RuntimeError("kaput")

        def short(x):
            return x[:-1]

        def nan(x):
            return x * float("nan")

        def as_numpy(x):
            return x.cpu().numpy()

        def chatty(x):
            print("hello from the transform")
            return x
        """)
    )
    (d / "brokenimport.py").write_text("raise ImportError('a missing dependency')\n")
    (d / "syntaxerror.py").write_text("def f(:\n")
    return d


def _png(width: int, height: int) -> bytes:
    """A PNG header (and an empty image) declaring ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


TINY = ["--n-train", "200", "--n-test", "70", "--epochs", "1", "--min-steps", "0", "--no-controls"]

#: (id, argv with {w} for the world folder, exit code, text the one line must hold)
CASES = [
    # outputs checked before any work
    ("out-is-a-file", ["train", "infnet", "--epochs", "1", "--out", "{w}/a-file"], 1, "is a file"),
    (
        "out-under-a-file",
        ["train", "infnet", "--epochs", "1", "--out", "{w}/a-file/sub"],
        1,
        "cannot be written",
    ),
    ("show-out-is-a-file", ["data", "show", "mnist", "--out", "{w}/a-file"], 1, "is a file"),
    (
        "obfuscate-out-unwritable",
        ["obfuscate", "--obfnet", "{w}/obfnet", "--out", "{w}/a-file/x"],
        1,
        "cannot be written",
    ),
    ("reproduce-out-is-a-file", ["reproduce", "--preset", "smoke", "--out", "{w}/a-file"], 1, "is a file"),
    (
        "audit-attack-out-is-a-file",
        ["audit", "--attack", "colornet", "--transform", "identity", "--out", "{w}/a-file", *TINY],
        1,
        "is a file",
    ),
    # values that cannot work
    ("negative-seed", ["train", "infnet", "--seed", "-1", "--out", "{w}/o"], 2, "--seed"),
    ("infinite-lr", ["train", "infnet", "--lr", "inf", "--out", "{w}/o"], 2, "finite"),
    ("nan-lr", ["train", "infnet", "--lr", "nan", "--out", "{w}/o"], 2, "finite"),
    (
        "diverging-lr",
        ["train", "infnet", "--arch", "mlp", "--lr", "1e12", "--epochs", "1", "--out", "{w}/o"],
        1,
        "diverged",
    ),
    (
        "shift-beyond-the-image",
        ["train", "infnet", "--shift", "30", "--epochs", "1", "--out", "{w}/o"],
        1,
        "--shift 30",
    ),
    (
        "three-tsne-points",
        ["audit", "--attack", "tsne", "--transform", "identity", "--n-tsne", "3", "--out", "{w}/o"],
        2,
        "at least 50",
    ),
    ("device-on-data-stats", ["data", "stats", "mnist", "--device", "cuda"], 2, "unrecognized arguments"),
    ("device-on-cost", ["cost", "--device", "cuda"], 2, "unrecognized arguments"),
    (
        "billion-proxy-images",
        [
            "audit",
            "--attack",
            "noisynet",
            "--transform",
            "identity",
            "--n-proxy",
            "1000000000",
            "--out",
            "{w}/o",
        ],
        1,
        "memory",
    ),
    (
        "unknown-attack",
        ["audit", "--attack", "magic", "--transform", "identity", "--out", "{w}/o"],
        2,
        "invalid choice",
    ),
    # the wrong kind of model file
    (
        "infnet-as-obfnet",
        ["audit", "--attack", "colornet", "--transform", "{w}/infnet", "--out", "{w}/o", *TINY],
        1,
        "is an InfNet",
    ),
    (
        "obfnet-as-infnet",
        ["train", "obfnet", "--infnet", "{w}/obfnet", "--bottleneck", "8", "--out", "{w}/o"],
        1,
        "is an obfuscator",
    ),
    (
        "obfnet-for-other-data",
        ["obfuscate", "--obfnet", "{w}/obfnet", "--data", "mnist", "--out", "{w}/x.png"],
        1,
        "trained on colored-mnist",
    ),
    ("absurd-bottleneck", ["obfuscate", "--obfnet", "{w}/huge", "--out", "{w}/x.png"], 1, "bottleneck"),
    ("unknown-dataset", ["obfuscate", "--obfnet", "{w}/foreign", "--out", "{w}/x.png"], 1, "unknown dataset"),
    ("seed-not-a-number", ["obfuscate", "--obfnet", "{w}/seedless", "--out", "{w}/x.png"], 1, "seed"),
    ("missing-sha256", ["obfuscate", "--obfnet", "{w}/unsigned", "--out", "{w}/x.png"], 1, "no SHA-256"),
    ("missing-model", ["obfuscate", "--obfnet", "{w}/nothing", "--out", "{w}/x.png"], 1, "not found"),
    # data files
    ("idx-magic", ["data", "stats", "mnist", "--data-root", "{w}/magic"], 1, "not an IDX file"),
    ("idx-dtype", ["data", "stats", "mnist", "--data-root", "{w}/dtype"], 1, "data type 0x0d"),
    ("idx-truncated", ["data", "stats", "mnist", "--data-root", "{w}/truncated"], 1, "truncated"),
    ("legacy-pt", ["data", "stats", "mnist", "--data-root", "{w}/legacy"], 1, "legacy torchvision"),
    ("decompression-bomb", ["data", "stats", "imagefolder", "--data-root", "{w}/bomb"], 1, "x.png"),
    ("no-data-root", ["data", "stats", "mnist", "--data-root", "{w}/nowhere"], 1, "MNIST/raw"),
    # user transforms
    (
        "transform-import-fails",
        ["audit", "--attack", "colornet", "--transform", "brokenimport:f", "--out", "{w}/o", *TINY],
        1,
        "a missing dependency",
    ),
    (
        "transform-syntax-error",
        ["audit", "--attack", "colornet", "--transform", "syntaxerror:f", "--out", "{w}/o", *TINY],
        1,
        "SyntaxError",
    ),
    (
        "transform-raises",
        ["audit", "--attack", "colornet", "--transform", "usertf:boom", "--out", "{w}/o", *TINY],
        1,
        "transform boom failed",
    ),
    (
        "transform-wrong-batch",
        ["audit", "--attack", "colornet", "--transform", "usertf:short", "--out", "{w}/o", *TINY],
        1,
        "one row per image",
    ),
    (
        "transform-nan",
        ["audit", "--attack", "colornet", "--transform", "usertf:nan", "--out", "{w}/o", *TINY],
        1,
        "NaN",
    ),
    (
        "transform-not-callable",
        ["audit", "--attack", "colornet", "--transform", "usertf:np", "--out", "{w}/o", *TINY],
        1,
        "not callable",
    ),
]


@pytest.mark.parametrize("argv,code,text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line(world, argv, code, text):
    r = run_cli(*(a.format(w=world) for a in argv), cwd=world, timeout=120)
    assert r.returncode == code, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("obfaudit: error:"), r.stderr
    assert text in r.stderr, r.stderr


def test_nothing_is_written_when_the_output_is_refused(world):
    run_cli("train", "infnet", "--epochs", "1", "--out", world / "a-file")
    assert (world / "a-file").read_text() == "not a directory"


@pytest.mark.parametrize("name", ["as_numpy", "chatty"])
def test_awkward_but_valid_transforms_work(world, name):
    """A numpy array is accepted; a print goes to stderr, so --json stays parseable."""
    r = run_cli(
        "audit",
        "--attack",
        "colornet",
        "--no-controls",
        "--transform",
        f"usertf:{name}",
        "--out",
        world / name,
        "--json",
        *TINY,
        cwd=world,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["records"][0]["metrics"]["feature_accuracy"] > 0.3
    if name == "chatty":
        assert "hello from the transform" in r.stderr


def test_debug_shows_the_traceback(world):
    r = run_cli(
        "--debug",
        "audit",
        "--attack",
        "colornet",
        "--transform",
        "usertf:boom",
        "--out",
        world / "o",
        *TINY,
        cwd=world,
    )
    assert r.returncode == 1 and "Traceback" in r.stderr and "kaput" in r.stderr


def test_a_second_run_on_a_locked_directory_is_refused(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from obfaudit._io import RunLock\n"
            f"with RunLock({str(tmp_path)!r}):\n    print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.time()
        r = run_cli("reproduce", "--preset", "smoke", "--out", tmp_path)
        assert r.returncode == 1 and "in use by another obfaudit run" in r.stderr
        assert str(holder.pid) in r.stderr and time.time() - t0 < 30
        assert not (tmp_path / "stages").exists()
    finally:
        holder.kill()
        holder.wait()


def test_offline_download_says_what_went_wrong(tmp_path, monkeypatch):
    """An offline --download names the file it could not fetch, and does not ask for --download."""
    import torchvision.datasets.utils as tvu

    from obfaudit.data import load_mnist
    from obfaudit.errors import DataError

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as e:
        load_mnist("train", data_root=tmp_path, download=True)
    assert "could not download" in str(e.value) and "offline" in str(e.value)
    assert "--download" not in str(e.value)


def test_model_files_are_byte_reproducible(tmp_path):
    """One model, one SHA-256: saving the same weights twice gives the same bytes."""
    torch.manual_seed(0)
    model = create_model("obfnet_cnn", input_shape=(1, 28, 28), bottleneck=4)
    blobs = {save_model(model, tmp_path / f"m{i}", dataset="mnist").read_bytes() for i in range(20)}
    assert len(blobs) == 1


def test_a_changed_input_file_recomputes_what_reads_it(tmp_path):
    """A dependency whose model file changed (same settings) recomputes its dependents."""
    from types import SimpleNamespace

    from obfaudit.experiments.stages import SerialExecutor, Stage

    calls, sha = [], {"value": "a" * 64}

    def model(ctx, stage, inputs):
        calls.append("model")
        return {"sha256": sha["value"]}

    def audit(ctx, stage, inputs):
        calls.append("audit")
        return {}

    ok = {"valid": True}
    plan = [
        Stage("model", model, valid=lambda ctx, record: ok["valid"]),
        Stage("audit", audit, deps=("model",)),
    ]
    ctx = SimpleNamespace(out=tmp_path)
    SerialExecutor().run(plan, ctx)
    ok["valid"], sha["value"] = False, "b" * 64  # the file on disk no longer matches: recomputed
    SerialExecutor().run(plan, ctx)
    assert calls == ["model", "audit", "model", "audit"]
