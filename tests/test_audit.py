"""obfaudit audit: any transform (ONNX too), a user's image folder and attribute, intervals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from obfaudit.models import create_model, save_model
from tests.conftest import run_cli


def _folder(root: Path, n: int, *, seed: int, splits=("train", "test"), task=True) -> Path:
    """Images whose 'tone' (dark/light) is their brightness and whose class is a shape."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for split in splits:
        for i in range(n):
            shape, tone = ("circle", "square")[i % 2], ("dark", "light")[(i // 2) % 2]
            yy, xx = np.mgrid[:16, :16]
            mask = (
                ((yy - 8) ** 2 + (xx - 8) ** 2 < 25)
                if shape == "circle"
                else ((abs(yy - 8) < 5) & (abs(xx - 8) < 5))
            )
            level = 90 if tone == "dark" else 230
            img = (mask[..., None] * level + rng.integers(0, 20, (16, 16, 3))).clip(0, 255).astype(np.uint8)
            rel = f"{split}/{shape}/{i}.png" if task else f"imgs/{split}{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / rel)
            rows.append({"path": rel, "tone": tone, "device": ("phone", "camera")[i % 3 == 0]})
    with (root / "attributes.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "tone", "device"])
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    private = _folder(base / "private", 300, seed=0)
    return private, _folder(base / "proxy", 300, seed=1, splits=("p",), task=False)


def test_audit_on_a_folder_with_its_own_attribute(folders, tmp_path):
    private, proxy = folders
    out = tmp_path / "a"
    r = run_cli(
        "audit",
        "--transform",
        "identity",
        "--data",
        private,
        "--attribute",
        "tone",
        "--proxy",
        proxy,
        "--attack",
        "colornet",
        "proxynet",
        "recnet",
        "--epochs",
        "15",
        "--out",
        out,
        "--json",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["verdict"] == "compromised" and summary["baselines"]["attribute"] == "tone"
    assert summary["baselines"]["chance"] == 0.5
    records = {x["attack"]: x for x in summary["records"]}
    assert records["proxynet"]["party"] == "adversary"
    assert records["colornet"]["metrics"]["feature_accuracy_ci"][0] > 0.75  # brightness is plain to see
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["attribute"] == "tone" and results["settings"]["command"]
    assert {e["attribute"] for e in results["experiments"]} == {"tone"}
    page = (out / "report.html").read_text()
    assert "Verdict on <b>tone</b>" in page and "strongest attack" in page and "colour" not in page


def test_onnx_transform_matches_the_pytorch_module(tmp_path):
    torch.manual_seed(0)
    model = create_model("obfnet_mlp", input_shape=(3, 28, 28), bottleneck=16)
    save_model(model, tmp_path / "obf", dataset="colored-mnist", seed=0)
    from obfaudit.transforms.onnx import export_onnx

    export_onnx(model, tmp_path / "obf.onnx", (3, 28, 28))
    args = [
        "--attack",
        "colornet",
        "--n-train",
        "300",
        "--n-test",
        "140",
        "--epochs",
        "2",
        "--min-steps",
        "0",
        "--min-steps",
        "0",  # 2 epochs as asked: hundreds of steps would amplify the graphs' float rounding
        "--attack-nets",
        "mlp",  # one network kind: near chance, which of two kinds wins could turn on that rounding too
        "--no-controls",
        "--json",
    ]
    a = run_cli("audit", "--transform", tmp_path / "obf", "--out", tmp_path / "pt", *args)
    b = run_cli("audit", "--transform", tmp_path / "obf.onnx", "--out", tmp_path / "onnx", *args)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr[-2000:], b.stderr[-2000:])
    fa = [json.loads(r.stdout)["records"][0]["metrics"]["feature_accuracy"] for r in (a, b)]
    assert abs(fa[0] - fa[1]) <= 1 / 140 + 1e-9  # float rounding may move one test image at most


def test_onnx_with_the_wrong_input_shape_is_one_line(tmp_path):
    from obfaudit.transforms.onnx import export_onnx

    export_onnx(
        create_model("obfnet_mlp", input_shape=(1, 28, 28), bottleneck=4), tmp_path / "gray.onnx", (1, 28, 28)
    )
    r = run_cli("audit", "--transform", tmp_path / "gray.onnx", "--out", tmp_path / "o")
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "takes ['batch', 1, 28, 28]" in r.stderr


@pytest.mark.parametrize(
    "problem,text",
    [
        ("missing-rows", "have no row in the attributes CSV"),
        ("unknown-attribute", "--attribute 'age'"),
        ("proxy-is-private", "is the private data"),
        ("proxy-copies-private", "copies of private images"),
    ],
)
def test_folder_problems_are_one_line(folders, tmp_path, problem, text):
    import shutil

    private, proxy = folders
    data = tmp_path / "private"
    shutil.copytree(private, data)
    extra = []
    if problem == "missing-rows":
        lines = (data / "attributes.csv").read_text().splitlines()
        (data / "attributes.csv").write_text("\n".join(lines[:-3]) + "\n")
    elif problem == "unknown-attribute":
        extra = ["--attribute", "age"]
    elif problem == "proxy-is-private":
        extra = ["--attribute", "tone", "--proxy", data]
    else:
        stolen = tmp_path / "stolen"
        shutil.copytree(proxy, stolen)
        shutil.copy(data / "train" / "circle" / "0.png", stolen / "imgs" / "p0.png")
        extra = ["--attribute", "tone", "--proxy", stolen]
    r = run_cli("audit", "--transform", "identity", "--data", data, *extra, "--out", tmp_path / "o")
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert text in r.stderr


def test_bootstrap_interval_is_right_and_cheap():
    import time

    from obfaudit.attacks.uncertainty import Bootstrap, interval_verdict

    rng = np.random.default_rng(0)
    correct = rng.random(1000) < 0.40
    t0 = time.perf_counter()
    lo, hi = Bootstrap(1000, seed=0).interval(correct)
    assert time.perf_counter() - t0 < 0.5
    p = correct.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / 1000)  # the normal approximation, for comparison
    assert abs(lo - (p - half)) < 0.01 and abs(hi - (p + half)) < 0.01
    assert interval_verdict(p, [lo, hi], 0.30) == "compromised"
    assert interval_verdict(0.31, [0.27, 0.35], 0.30) == "inconclusive"
    assert interval_verdict(0.2, [0.17, 0.23], 0.30) == "not compromised"


def test_repeats_report_the_spread(tmp_path):
    r = run_cli(
        "audit",
        "--transform",
        "identity",
        "--attack",
        "colornet",
        "--repeats",
        "2",
        "--n-train",
        "300",
        "--n-test",
        "140",
        "--epochs",
        "1",
        "--min-steps",
        "0",
        "--no-controls",
        "--out",
        tmp_path,
        "--json",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    spread = json.loads(r.stdout)["records"][0]["metrics"]["repeats"]
    assert spread["seeds"] == [0, 1] and spread["feature_accuracy"]["n"] == 2


def test_a_folder_of_colours_keeps_the_meaning_of_each_colour(tmp_path):
    """A folder orders its colour names alphabetically, the palette does not: the built-in
    proxies and the palette reading are mapped to the folder's order (they scored 0% before)."""
    r = run_cli("data", "export", "colored-mnist", "--n", "400", "--out", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    header = (tmp_path / "d" / "attributes.csv").read_text().splitlines()[0]
    assert header == "path,colour"
    r = run_cli(
        "audit",
        "--transform",
        "identity",
        "--data",
        tmp_path / "d",
        "--attack",
        "noisynet",
        "recnet",
        "--n-proxy",
        "2100",
        "--epochs",
        "3",
        "--no-controls",
        "--out",
        tmp_path / "o",
        "--json",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    records = {x["attack"]: x["metrics"] for x in json.loads(r.stdout)["records"]}
    assert records["noisynet"]["feature_accuracy"] > 0.5
    assert records["recnet"]["attribute_by_palette"] > 0.5


def test_awkward_transforms_flat_random_and_seeded(tmp_path):
    """A flat-vector transform is reconstructed and drawn; a random one is seeded per audit."""
    from obfaudit.attacks import AuditConfig, audit_transform
    from obfaudit.data import load_colored_mnist
    from obfaudit.train import TrainConfig

    train = load_colored_mnist("train").subset(slice(0, 300))
    test = load_colored_mnist("test").subset(slice(0, 140))
    cfg = AuditConfig(attacks=("colornet",), train=TrainConfig(epochs=1, patience=None, val_fraction=0))

    def noisy(x):
        return x + 0.3 * torch.randn_like(x)

    runs = [audit_transform("noisy", noisy, train=train, test=test, config=cfg) for _ in range(2)]
    assert runs[0].records[0].metrics == runs[1].records[0].metrics
    (tmp_path / "flat.py").write_text("def flat(x):\n    return x.flatten(1)[:, ::7]\n")
    r = run_cli(
        "audit",
        "--attack",
        "recnet",
        "--transform",
        "flat:flat",
        "--n-train",
        "300",
        "--n-test",
        "70",
        "--epochs",
        "1",
        "--min-steps",
        "0",
        "--no-controls",
        "--out",
        tmp_path / "o",
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "o" / "figures" / "reconstructions.png").exists()


def test_a_saved_model_is_audited_on_its_own_split(tmp_path):
    torch.manual_seed(0)
    save_model(
        create_model("obfnet_mlp", input_shape=(3, 28, 28), bottleneck=4),
        tmp_path / "m",
        dataset="colored-mnist",
        seed=3,
    )
    r = run_cli(
        "audit",
        "--attack",
        "colornet",
        "--transform",
        tmp_path / "m",
        "--n-train",
        "200",
        "--n-test",
        "70",
        "--epochs",
        "1",
        "--min-steps",
        "0",
        "--no-controls",
        "--out",
        tmp_path / "o",
        "--json",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "o" / "results.json").read_text())["settings"]["split_seed"] == 3


def test_apply_transform_fills_one_float_tensor_batch_by_batch():
    from obfaudit.transforms import apply_transform
    from obfaudit.transforms.base import TransformError

    torch.manual_seed(0)
    net = create_model("obfnet_mlp", input_shape=(1, 6, 6), bottleneck=4).eval()
    images = torch.randint(0, 256, (10, 1, 6, 6), dtype=torch.uint8)
    out = apply_transform(net, images, batch_size=3)  # batches of 3, 3, 3 and 1
    with torch.no_grad():
        whole = net(images.float() / 255)
    assert out.dtype == torch.float32 and torch.allclose(out, whole, atol=1e-6)
    assert apply_transform(net, images[:0]).numel() == 0

    calls = iter(range(10))

    def changes_shape(x):  # a transform whose output shape depends on the batch
        return x.flatten(1)[:, : 5 + next(calls)]

    with pytest.raises(TransformError, match="one shape"):
        apply_transform(changes_shape, images, batch_size=3)


@pytest.mark.slow
def test_odd_data_grey_non_square_and_tiny_audits_cleanly(tmp_path):
    """40 grey 24x40 images, a two-class attribute, every attack that applies: no internal error,
    and each attack that cannot run is named with its reason."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root, rows = tmp_path / "grey", []
    for split in ("train", "test"):
        for i in range(40):
            cls, tone = ("a", "b")[i % 2], ("dark", "light")[(i // 2) % 2]
            img = (rng.integers(0, 30, (24, 40)) + (60 if tone == "dark" else 190)).astype(np.uint8)
            rel = f"{split}/{cls}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(root / rel)
            rows.append({"path": rel, "tone": tone})
    with (root / "attributes.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "tone"])
        w.writeheader()
        w.writerows(rows)
    r = run_cli(
        "audit", "--transform", "identity", "--data", root, "--epochs", "2", "--out", tmp_path / "a", "--json"
    )
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stderr[-2000:]
    result = json.loads(r.stdout)
    ran = {x["attack"] for x in result["records"]}
    assert {"recnet", "colornet", "linprobe", "knnprobe", "tsne", "inversion"} <= ran
    skipped = result["skipped"]["identity"]
    assert skipped["noisynet"].startswith("needs proxy:noisy: ") and "--proxy DIR" in skipped["decoder"]
    assert result["verdict"] == "compromised"  # the probes read the tone through the identity


@pytest.mark.parametrize("keepdim", [True, False])
def test_a_transform_that_sends_one_number_per_image_is_audited(tmp_path, keepdim):
    # the mean brightness carries the background: every attack that reads it says so
    shape = "[:, None]" if keepdim else ""
    (tmp_path / "one.py").write_text(f"def brightness(x):\n    return x.mean(dim=(1, 2, 3)){shape}\n")
    r = run_cli(
        "audit", "--transform", "one:brightness", "--data", "shapes", "--size", "16", "--n-train", "200",
        "--n-test", "60", "--attribute", "background", "--attack", "colornet", "tsne", "linprobe", "recnet",
        "--epochs", "2", "--min-steps", "0", "--no-controls", "--out", tmp_path / "o", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert {rec["attack"] for rec in report["records"]} == {"colornet", "tsne", "linprobe", "recnet"}
    assert report["verdict"] == "compromised"
