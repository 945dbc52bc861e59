import math

import pytest
from torch import nn

from obfaudit.cost import cost_table, model_cost
from obfaudit.models import register_model
from obfaudit.study.context import RunSettings
from obfaudit.study.presets import get_preset
from obfaudit.study.reproduce import reproduce


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_224_parameter_counts():
    rows = {r["model"]: r for r in cost_table((3, 224, 224), bottleneck=512)}
    assert rows["ObfNet-MLP"]["params"] == 150528 * 512 + 512 + 512 * 150528 + 150528
    assert rows["ObfNet-CNN"]["params"] == 896 + (111 * 111 * 32) * 512 + 512 + 512 * 150528 + 150528
    assert rows["LightNet"]["params"] == 1792 + 18464 + 64 + 387
    assert abs(rows["DenseNet"]["params"] / 25.0e6 - 1) < 0.02
    assert rows["ResNet50"]["params"] == 23_528_522  # torchvision ResNet50, 10-class head


class KnownFlops(nn.Module):
    """A linear layer and a convolution with hand-counted FLOPs."""

    def __init__(self, input_shape=(3, 8, 8)):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # 6*6 outputs x 4 channels x 27 MACs
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


register_model("test_known_flops")(lambda input_shape=(3, 8, 8): KnownFlops(input_shape))


def test_flop_counter_on_a_known_model():
    c = model_cost("test_known_flops", (3, 8, 8))
    assert c["flops"] == 2 * (36 * 4 * 27 + 144 * 5)
    assert c["params"] == 4 * 27 + 4 + 144 * 5 + 5


def test_cost_needs_no_memory():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cost_table((3, 224, 224))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300  # the 279M-parameter ObfNet-CNN alone would need 1.1 GB


@pytest.mark.slow
def test_scaling_study_on_a_tiny_folder(image_folder, tmp_path):
    preset = get_preset("imagenette", scaling_size=64, scaling_epochs=1)
    summary = reproduce(
        RunSettings(preset="imagenette", out=tmp_path / "run", data_root=image_folder), preset=preset
    )
    assert "scaling" in summary["stages_run"]
    import json

    res = json.loads((tmp_path / "run" / "stages" / "scaling.json").read_text())["result"]
    assert set(res["obfuscators"]) == {"lightnet", "densenet"}
    for m in res["obfuscators"].values():
        assert 0.0 <= m["obfuscated_top1"] <= 1.0 and math.isfinite(m["fit"]["train_loss"])
    assert (tmp_path / "run" / "figures" / "fig12_scaling_obfuscated.png").exists()
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Scaling study" in page and "Table 1" in page


def test_scaling_needs_a_folder(tmp_path):
    from obfaudit.errors import ObfauditError

    with pytest.raises(ObfauditError, match="data-root"):
        reproduce(RunSettings(preset="imagenette", out=tmp_path / "run"))


def test_resnet_weights_are_used(image_folder, tmp_path):
    """--resnet-weights reaches the scaling stage: a file that is not ResNet50 weights is refused.

    (It was silently ignored: the run context never received it.)
    """
    import torch
    from safetensors.torch import save_file

    from obfaudit.errors import ModelFileError

    bogus = tmp_path / "not-resnet.safetensors"
    save_file({"layer.weight": torch.zeros(3, 3)}, str(bogus))
    preset = get_preset("imagenette", scaling_size=32, scaling_epochs=1)
    settings = RunSettings(
        preset="imagenette", out=tmp_path / "run", data_root=image_folder, resnet_weights=bogus
    )
    with pytest.raises(ModelFileError, match="not-resnet.safetensors"):
        reproduce(settings, preset=preset)
