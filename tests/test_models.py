import copy
import json

import pytest
import torch

from obfaudit.errors import ModelFileError
from obfaudit.models import (
    create_model,
    list_models,
    load_model,
    model_id,
    read_sidecar,
    register_model,
    save_model,
)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# Expected counts from the layer lists (SPEC section 3), worked out by hand.
@pytest.mark.parametrize(
    "arch,kwargs,c,expected",
    [
        ("infnet_cnn", {}, 1, 1_199_882),
        ("infnet_cnn", {}, 3, 1_200_458),
        ("infnet_mlp", {}, 1, 932_362),
        ("infnet_mlp", {}, 3, 1_735_178),
        ("colornet", {"classes": 7}, 3, 1_733_639),
        ("obfnet_mlp", {"bottleneck": 512}, 1, 1569 * 512 + 784),
        ("obfnet_mlp", {"bottleneck": 8}, 3, 4705 * 8 + 2352),
        ("obfnet_cnn", {"bottleneck": 512}, 1, 320 + 6193 * 512 + 784),
        ("obfnet_cnn", {"bottleneck": 64}, 3, 896 + (5409 + 2352) * 64 + 2352),
        ("recnet", {}, 3, 4705 * 1024 + 2352),
    ],
)
def test_parameter_counts(arch, kwargs, c, expected):
    assert n_params(create_model(arch, input_shape=(c, 28, 28), **kwargs)) == expected


@pytest.mark.parametrize("name", [n for n in list_models() if n not in ("resnet50",)])
@pytest.mark.parametrize("c", [1, 3])
def test_every_registered_model_runs(name, c):
    size = 224 if name in ("lightnet", "densenet") else 28
    if size == 224 and c == 1:
        pytest.skip("224x224 obfuscators are for RGB images")
    kwargs = {"bottleneck": 16} if name.startswith("obfnet") else {}
    m = create_model(name, input_shape=(c, size, size), **kwargs).eval()
    with torch.no_grad():
        y = m(torch.rand(2, c, size, size))
    if name in ("infnet_cnn", "infnet_mlp"):
        assert y.shape == (2, 10)
    elif name in ("colornet", "colornet_conv"):
        assert y.shape == (2, 7)
    else:  # obfuscators and RecNet give back an image-shaped tensor
        assert y.shape == (2, c, size, size)
        if name.startswith("obfnet") or name == "recnet":  # ReLU outputs, as the Keras code
            assert float(y.min()) >= 0.0


def test_recnet_maps_any_shape_back():
    m = create_model("recnet", input_shape=(5, 4, 4), output_shape=(3, 28, 28))
    assert m(torch.rand(2, 5, 4, 4)).shape == (2, 3, 28, 28)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("nope")
    with pytest.raises(ValueError, match="twice"):
        register_model("infnet_cnn", role="infnet")(lambda: None)
    with pytest.raises(ValueError):
        create_model("obfnet_mlp", bottleneck=0)
    assert model_id("obfnet_mlp", bottleneck=512) == "obfnet-mlp-b512"
    # roles: what --arch names, and what a saved model may stand for
    from obfaudit.models import Role, archs, model_for

    assert model_for(Role.OBFUSCATOR, "cnn") == "obfnet_cnn" and model_for(Role.INFNET, "mlp") == "infnet_mlp"
    assert set(archs(Role.OBFUSCATOR)) == {"mlp", "cnn"}
    with pytest.raises(ValueError, match="no obfuscator model"):
        model_for(Role.OBFUSCATOR, "rnn")


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    m = create_model("obfnet_cnn", input_shape=(3, 28, 28), bottleneck=32).eval()
    path = save_model(m, tmp_path / "obf", dataset="colored-mnist", seed=3, metrics={"acc": 0.5})
    loaded, info = load_model(path)
    x = torch.rand(4, 3, 28, 28)
    assert torch.equal(m(x), loaded(x))
    assert info["arch"] == "obfnet_cnn" and info["kwargs"]["bottleneck"] == 32
    assert info["input_shape"] == [3, 28, 28] and info["seed"] == 3 and info["metrics"]["acc"] == 0.5
    # any of the three spellings of the path works
    for p in (tmp_path / "obf", tmp_path / "obf.json"):
        assert torch.equal(load_model(p)[0](x), m(x))


def test_truncated_weights_refused(tmp_path):
    path = save_model(create_model("infnet_mlp"), tmp_path / "m")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_model(path)


def test_foreign_and_mismatched_files_refused(tmp_path):
    path = save_model(create_model("infnet_mlp"), tmp_path / "m")
    side = tmp_path / "m.json"
    info = json.loads(side.read_text())
    # a sidecar that claims another architecture: shapes do not fit
    side.write_text(json.dumps({**info, "kwargs": {"input_shape": [3, 28, 28], "classes": 10}}))
    with pytest.raises(ModelFileError, match="shape"):
        load_model(path)
    # a JSON file that is not ours
    side.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelFileError, match="not an obfaudit model"):
        load_model(path)
    side.write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupt"):
        read_sidecar(path)
    # a pickle pretending to be a model: never unpickled, refused by the safetensors reader
    import hashlib

    blob = b"\x80\x04\x95" + b"\0" * 64
    path.write_bytes(blob)
    side.write_text(json.dumps({**info, "sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(ModelFileError, match="safetensors"):
        load_model(path)


def test_missing_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.safetensors")


def test_study_networks_start_like_the_reference_and_attack_networks_do_not():
    """InfNets and ObfNets: Glorot weights and zero biases (Keras' defaults), which keep every
    unit of a small ReLU bottleneck alive at the start; RecNet and ColorNet keep PyTorch's."""
    torch.manual_seed(0)
    obf = create_model("obfnet_cnn", input_shape=(3, 28, 28), bottleneck=8)
    biases = [m.bias for m in obf.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    assert biases and all(bool((b == 0).all()) for b in biases)
    dense = obf.net[4].weight.detach()
    bound = (6 / (dense.shape[0] + dense.shape[1])) ** 0.5
    assert float(dense.abs().max()) <= bound and float(dense.abs().max()) > 0.9 * bound
    for name in ("infnet_cnn", "obfnet_mlp"):
        m = create_model(name, input_shape=(1, 28, 28))
        assert all(bool((p == 0).all()) for n, p in m.named_parameters() if n.endswith("bias"))
    rec = create_model("recnet", input_shape=(1, 28, 28))
    assert any(bool((p != 0).any()) for n, p in rec.named_parameters() if n.endswith("bias"))


@pytest.mark.parametrize("name", ["infnet_cnn", "obfnet_cnn"])
def test_pooling_before_relu_gives_the_reference_order_values_and_gradients(name):
    """The convolutional networks pool before their ReLU (cheaper); the reference order,
    ReLU then pooling, gives the same outputs and the same gradients, bit for bit."""
    torch.manual_seed(0)
    model = create_model(name, input_shape=(3, 28, 28))
    reference = copy.deepcopy(model)
    seq = reference.features if name == "infnet_cnn" else reference.net
    layers = list(seq)
    i = next(k for k, m in enumerate(layers) if isinstance(m, torch.nn.MaxPool2d))
    assert isinstance(layers[i + 1], torch.nn.ReLU)
    layers[i], layers[i + 1] = layers[i + 1], layers[i]
    seq_ref = torch.nn.Sequential(*layers)
    if name == "infnet_cnn":
        reference.features = seq_ref
    else:
        reference.net = seq_ref
    x = torch.rand(16, 3, 28, 28) - 0.5  # negative inputs too: windows whose maximum is < 0
    grads = []
    for net in (model, reference):
        net.eval()
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(xi)
        out.float().square().sum().backward()
        grads.append((out.detach(), xi.grad, [p.grad for p in net.parameters()]))
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = grads
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    assert all(torch.equal(a, b) for a, b in zip(gp_a, gp_b, strict=True))
