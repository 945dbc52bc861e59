"""Split-point sweeps: a whole model cut at several nodes, each cut audited, leakage against depth."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from obfaudit.audit.split import split_nodes
from obfaudit.errors import ObfauditError
from obfaudit.transforms.split import cut_module, cut_onnx
from tests.conftest import run_cli


def test_nodes_are_read_from_commas_and_words_each_once():
    assert split_nodes(["layer1,layer2", "layer3", "layer2,"]) == ("layer1", "layer2", "layer3")
    assert split_nodes("layer1,layer2") == ("layer1", "layer2")  # one string, from Python
    with pytest.raises(ObfauditError, match="at least one node"):
        split_nodes([","])


def test_a_torchvision_model_is_cut_where_asked_and_a_wrong_node_is_one_line():
    from torchvision.models import resnet18

    model = resnet18()
    x = torch.rand(2, 3, 32, 32)
    assert cut_module(model, "layer2")(x).shape == (2, 128, 4, 4)
    assert cut_module(model, "layer1.0.relu_1")(x).shape == (2, 64, 8, 8)
    with pytest.raises(ObfauditError, match=r"--split layer5: no such node in the model; near it: .*layer"):
        cut_module(model, "layer5")


def test_an_onnx_graph_is_cut_at_a_tensor(tmp_path):
    pytest.importorskip("onnx")
    import onnx

    from obfaudit.transforms.onnx import OnnxTransform, export_onnx

    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1)
    ).eval()
    path = export_onnx(net, tmp_path / "net.onnx", (3, 16, 16))

    relu = next(n.output[0] for n in onnx.load(str(path)).graph.node if n.op_type == "Relu")
    cut = cut_onnx(path, relu, tmp_path / "cuts" / "relu.onnx")
    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(OnnxTransform(cut)(x), net[:2](x), atol=1e-5)
    with pytest.raises(ObfauditError, match="no tensor of that name in net.onnx; near it"):
        cut_onnx(path, "nowhere", tmp_path / "cuts" / "x.onnx")


@pytest.mark.slow
def test_resnet18_cut_at_four_blocks_in_one_command(tmp_path):
    """The command a user runs: four cuts, each audited with its own report, the controls computed once,
    and the sweep's figure and table; bytes halve block by block."""
    out = tmp_path / "sweep"
    args = (
        "audit", "--transform", "torchvision.models:resnet18", "--split", "layer1,layer2,layer3,layer4",
        "--data", "shapes", "--size", "32", "--n-train", "120", "--n-test", "60", "--attribute", "background",
        "--attack", "recnet", "linprobe", "--min-steps", "40", "--attack-nets", "conv",
        "--executor", "serial", "--out", out, "--cache", tmp_path / "cache",
        "--json",
    )  # fmt: skip
    r = run_cli(*args, subprocess_=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    cuts = result["cuts"]
    assert [c["node"] for c in cuts] == ["layer1", "layer2", "layer3", "layer4"]
    assert [c["bytes_per_image"] for c in cuts] == [16384, 8192, 4096, 2048]
    assert all(c["verdict"] and c["worst_fa_ci"] and c["best_ssim"] is not None for c in cuts)
    assert all(0 <= c["utility"] <= 1 and c["utility_ci"] for c in cuts)
    # beside each cut's best reconstruction: its PSNR with an interval, the same attack through the identity
    assert all(c["best_psnr"] > 0 and c["best_psnr_ci"] and not c["best_exact"] for c in cuts)
    assert all(c["best_ssim"] <= c["identity_ssim"] <= 1 for c in cuts)
    # and through a tensor of the cut's own shape (recnet is the best: it ran on the same-shape control)
    assert all(c["best_ssim_attack"] == "recnet" and 0 < c["shape_ssim"] <= 1 for c in cuts)
    assert all(c["folder"] == c["node"] for c in cuts)
    for c in cuts:
        assert (out / c["node"] / "report.html").is_file()
    page = (out / "report.html").read_text()
    assert "layer4" in page and 'href="layer1/report.html"' in page and "data:image/png" in page
    assert (out / "figures" / "split.png").stat().st_size > 10_000
    assert json.loads((out / "split.json").read_text())["cuts"] == cuts
    # the identity and null controls ran once for all four cuts
    stages = [p.name for p in (tmp_path / "cache" / "stages").iterdir()]
    assert sum(s.startswith("identity-recnet") for s in stages) == 1
    # the factory builds its random weights under the audit's seed: a rerun is the same model, and
    # keeps every stage of every cut
    again = run_cli(*args, subprocess_=True, timeout=600)
    assert again.returncode == 0 and "done in" not in again.stderr, again.stderr[-2000:]
    assert again.stderr.count("kept from an earlier run") == sum(
        len(list((out / c["node"] / "stages").glob("*.json"))) + 2 + 2 * 2 + 1 for c in cuts
    )  # each cut's own stages, its same-shape control's two attacks, the two controls' two attacks, the judge


def test_a_sweeps_progress_says_how_many_cuts_follow_and_at_what_pace():
    from obfaudit.audit.sweeps import _sweep_progress
    from obfaudit.commands._base import Progress

    seen = []
    _sweep_progress(seen.append, 2, 300.0)(Progress("[3/9] recnet: done in 4.0 s; about 1 min left", 3, 9))
    _sweep_progress(seen.append, 1, None)(Progress("[1/9] started", 1, 9))
    _sweep_progress(seen.append, 0, 300.0)(Progress("[9/9] done", 9, 9))
    assert [p.message for p in seen] == [
        "[3/9] recnet: done in 4.0 s; about 1 min left; then 2 more cuts, at least 10 min 00 s at the last "
        "cut's pace",
        "[1/9] started; then 1 more cut",
        "[9/9] done",
    ]
    assert (seen[0].done, seen[0].total) == (3, 9)


def test_an_exact_reconstruction_reads_exact_not_missing():
    from obfaudit.audit.split import SplitReport

    cut = {"node": "layer1", "verdict": "compromised", "worst_fa": 1.0, "worst_fa_ci": [1.0, 1.0],
           "worst_attack": "recnet", "best_ssim": 1.0, "identity_ssim": 1.0, "best_psnr": None,
           "best_exact": True, "bytes_per_image": 4, "utility": None}  # fmt: skip
    baselines = {"attribute": "background", "threshold": 0.75, "chance": 0.5}
    line = SplitReport("m", [cut], baselines, "shape").summary().splitlines()[2]
    assert "1.000 (1.000/-)" in line and "exact" in line
