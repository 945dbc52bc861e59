import pytest
import torch

from obfaudit.data import load_colored_mnist, load_mnist
from obfaudit.models import create_model
from obfaudit.train import (
    TrainConfig,
    accuracy,
    predict,
    random_shift,
    train_classifier,
    train_obfnet,
    train_reconstructor,
)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist("train", seed=0).subset(slice(0, 2000)), load_mnist("test", seed=0)


@pytest.fixture(scope="module")
def infnet(mnist):
    train, _ = mnist
    torch.manual_seed(0)
    m = create_model("infnet_mlp", input_shape=(1, 28, 28))
    train_classifier(m, train.x, train.labels["digit"], TrainConfig(epochs=3, patience=None, val_fraction=0))
    return m


def test_classifier_learns(mnist, infnet):
    _, test = mnist
    assert accuracy(predict(infnet, test.x), test.labels["digit"]) > 0.85


def test_obfnet_learns_and_infnet_is_untouched(mnist, infnet):
    train, test = mnist
    before = {k: v.clone() for k, v in infnet.state_dict().items()}
    torch.manual_seed(0)
    obf = create_model("obfnet_mlp", input_shape=(1, 28, 28), bottleneck=64)
    train_obfnet(
        obf,
        infnet,
        train.x,
        train.labels["digit"],
        TrainConfig(epochs=2, patience=None, val_fraction=0),
    )
    after = infnet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical
    assert all(p.grad is None for p in infnet.parameters())
    acc = accuracy(predict(lambda x: infnet(obf(x)), test.x), test.labels["digit"])
    assert acc > 0.6  # far above 10% chance


def test_reference_dropout_mode_also_leaves_infnet_untouched(mnist):
    train, _ = mnist
    inf = create_model("infnet_cnn", input_shape=(1, 28, 28))
    before = {k: v.clone() for k, v in inf.state_dict().items()}
    obf = create_model("obfnet_cnn", input_shape=(1, 28, 28), bottleneck=8)
    seen = []
    orig = inf.forward
    inf.forward = lambda x: (seen.append(inf.training), orig(x))[1]
    train_obfnet(
        obf,
        inf,
        train.x[:256],
        train.labels["digit"][:256],
        TrainConfig(epochs=1, patience=None, val_fraction=0),
        infnet_dropout=True,
    )
    assert all(seen) and not inf.training  # dropout on while training, eval afterwards
    assert all(torch.equal(before[k], v) for k, v in inf.state_dict().items())


def test_early_stopping_restores_best(mnist):
    train, _ = mnist
    m = create_model("infnet_mlp", input_shape=(1, 28, 28))
    # a learning rate so large that validation loss gets worse: training stops early
    r = train_classifier(m, train.x, train.labels["digit"], TrainConfig(epochs=8, lr=0.5, patience=1))
    assert r.epochs_run < 8 and r.stopped == "patience"
    # classifiers keep the epoch with the best validation accuracy
    assert r.val_metric == max(h["val_metric"] for h in r.history)
    assert r.best_epoch == 1 + max(range(r.epochs_run), key=lambda i: r.history[i]["val_metric"])


def test_a_perfect_hold_out_ends_training_with_the_weights_any_longer_run_would_keep(monkeypatch):
    import obfaudit.train as train

    # a colour read from a colour: the hold-out is perfect after the first epochs
    data = load_colored_mnist("train").subset(slice(0, 600))
    y = data.labels["colour"]
    fits, weights = [], []
    for stop in (True, False):  # the rule on, and off: training then runs until its patience is spent
        monkeypatch.setattr(train, "STOP_WHEN_PERFECT", stop)
        torch.manual_seed(0)
        m = create_model("colornet", input_shape=(3, 28, 28))
        fits.append(train_classifier(m, data.x, y, TrainConfig(epochs=12, seed=0, patience=4, lr=3e-3)))
        weights.append(m.state_dict())
    short, long = fits
    assert short.stopped == "perfect" and short.val_metric == 1.0 and short.epochs_run == short.best_epoch
    assert long.epochs_run > short.epochs_run and long.best_epoch == short.best_epoch
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the same network kept


def test_same_seed_same_result():
    data = load_colored_mnist("train").subset(slice(0, 512))
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = create_model("colornet", input_shape=(3, 28, 28))
        train_classifier(
            m,
            data.x,
            data.labels["colour"],
            TrainConfig(epochs=1, seed=1, patience=None, val_fraction=0),
        )
        outs.append(predict(m, data.x[:16]))
    assert torch.equal(outs[0], outs[1])


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError):
        TrainConfig(shift=-1)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="cosine")
    # the study's settings keep the keys of runs recorded before the schedule existed
    assert "schedule" not in TrainConfig().to_dict()
    assert TrainConfig(schedule="onecycle").to_dict()["schedule"] == "onecycle"
    # a shift would move RecNet's inputs away from its pixel targets
    with pytest.raises(ValueError, match="shift"):
        train_reconstructor(
            create_model("recnet", input_shape=(1, 28, 28)),
            *[torch.zeros(4, 1, 28, 28)] * 2,
            TrainConfig(shift=1),
        )


def test_random_shift_moves_each_image_by_its_own_offset():
    x = torch.zeros(300, 2, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel in the centre of both channels
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.sum() == x.sum()  # nothing falls off a 9x9 image
    ys, xs = (out[:, 0] == 1).nonzero()[:, 1:].T
    assert torch.equal(out[:, 0], out[:, 1])  # channels move together
    assert len(ys) == len(x)  # one bright pixel per image, moved, not duplicated
    offsets = set(zip((ys - 4).tolist(), (xs - 4).tolist(), strict=True))
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # all 25, none beyond
    again = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # at the border the uncovered pixels are zero, not wrapped around
    edge = torch.zeros(200, 1, 5, 5)
    edge[:, :, 0, 0] = 1.0
    assert random_shift(edge, 1, torch.Generator().manual_seed(1)).sum() < edge.sum()


def test_onecycle_trains_and_ends_with_a_small_rate(mnist, infnet, monkeypatch):
    train, test = mnist
    rates = []
    step = torch.optim.Adam.step

    def record(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", record)
    torch.manual_seed(0)
    m = create_model("infnet_mlp", input_shape=(1, 28, 28))
    cfg = TrainConfig(epochs=2, lr=3e-3, schedule="onecycle", patience=None, val_fraction=0)
    train_classifier(m, train.x, train.labels["digit"], cfg)
    steps = 2 * -(-len(train) // cfg.batch_size)
    assert len(rates) == steps
    assert max(rates) == pytest.approx(3e-3, rel=0.05) and rates[-1] < 1e-5 and rates[0] < 3e-4
    assert accuracy(predict(m, test.x), test.labels["digit"]) > 0.8


def test_predict_batches_do_not_change_outputs(infnet, mnist):
    _, test = mnist
    x = test.x[:600]
    assert torch.allclose(predict(infnet, x), predict(infnet, x, batch_size=7), atol=1e-5)


def test_predict_fills_one_tensor_and_refuses_outputs_that_do_not_match_the_inputs():
    from obfaudit.errors import ObfauditError
    from obfaudit.train import predict

    x = torch.arange(20, dtype=torch.float32).view(10, 2)
    out = predict(lambda b: (2 * b).to(torch.bfloat16), x, batch_size=3)
    assert out.dtype == torch.float32 and torch.equal(out, 2 * x)
    assert predict(lambda b: b, x[:0]).numel() == 0
    for bad in (lambda b: b[:1], lambda b: b[:, :1] if len(b) < 3 else b):  # short rows; a new shape
        with pytest.raises(ObfauditError, match="one output of one shape per input"):
            predict(bad, x, batch_size=3)


def test_the_step_is_compiled_only_when_asked_and_where_it_was_measured_to_pay(monkeypatch):
    from obfaudit.train import COMPILE_MIN_STEPS, compiles

    cpu = torch.device("cpu")
    mlp = create_model("recnet", input_shape=(3, 28, 28))
    cnn = create_model("obfnet_cnn", input_shape=(1, 28, 28), bottleneck=8)
    monkeypatch.delenv("OBFAUDIT_COMPILE", raising=False)
    assert not compiles(mlp, cpu, 10 * COMPILE_MIN_STEPS, plain=True)  # off by default: it did not pay
    monkeypatch.setenv("OBFAUDIT_COMPILE", "on")
    assert compiles(mlp, cpu, COMPILE_MIN_STEPS, plain=True)
    assert not compiles(mlp, cpu, COMPILE_MIN_STEPS - 1, plain=True)  # too short to repay compiling
    assert not compiles(cnn, cpu, 10 * COMPILE_MIN_STEPS, plain=True)  # convolutions ran slower compiled
    assert not compiles(
        mlp, cpu, 10 * COMPILE_MIN_STEPS, plain=False
    )  # a defence's objective, a frozen partner
    monkeypatch.setenv("OBFAUDIT_COMPILE", "all")
    assert compiles(cnn, cpu, 1, plain=False)
    monkeypatch.setenv("OBFAUDIT_COMPILE", "0")
    assert not compiles(mlp, cpu, 10 * COMPILE_MIN_STEPS, plain=True)


def test_a_failing_compiler_falls_back_to_eager_training_with_one_line(monkeypatch, caplog):
    import obfaudit.train as train

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C compiler found\nmore detail")

        return call

    monkeypatch.setenv("OBFAUDIT_COMPILE", "all")
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(train, "_COMPILE_FAILED", [])
    torch.manual_seed(0)
    x = torch.rand(256, 1, 8, 8)
    config = TrainConfig(epochs=2, batch_size=64, patience=None, val_fraction=0.0, seed=0)
    with caplog.at_level("WARNING", logger="obfaudit.train"):
        first, second = (
            train_reconstructor(
                torch.manual_seed(0) and create_model("recnet", input_shape=(1, 8, 8)), x, x, config
            )
            for _ in range(2)
        )
    lines = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert lines == ["torch.compile failed, training eagerly from now on (RuntimeError: no C compiler found)"]
    assert not first.compiled and not second.compiled and first.epochs_run == 2
    assert abs(first.train_loss - second.train_loss) < 1e-6  # eager both times: the same training


@pytest.mark.slow
def test_a_compiled_step_trains_as_the_eager_one(monkeypatch):
    torch.manual_seed(0)
    x = torch.rand(512, 1, 8, 8)
    config = TrainConfig(epochs=3, batch_size=64, patience=None, val_fraction=0.0, seed=0, precision="fp32")
    losses = {}
    for mode in ("off", "all"):
        monkeypatch.setenv("OBFAUDIT_COMPILE", mode)
        torch.manual_seed(1)
        net = create_model("recnet", input_shape=(1, 8, 8))  # no dropout: no random numbers to differ
        fit_ = train_reconstructor(net, x, x, config)
        assert fit_.compiled == (mode == "all")
        losses[mode] = [h["train_loss"] for h in fit_.history]
    assert losses["all"] == pytest.approx(losses["off"], rel=1e-3)


def test_a_defence_objective_is_never_compiled(monkeypatch):
    from obfaudit.train import fit

    monkeypatch.setenv("OBFAUDIT_COMPILE", "all")
    torch.manual_seed(0)
    x = torch.rand(256, 1, 8, 8)
    net = create_model("recnet", input_shape=(1, 8, 8))
    calls = []

    def objective(xb, yb):  # a penalty and an adversary's own steps live here: they must run every batch
        calls.append(len(xb))
        return torch.nn.functional.mse_loss(net(xb).float(), yb)

    config = TrainConfig(epochs=1, batch_size=64, patience=None, val_fraction=0.0, seed=0)
    result = fit(net, x, x, torch.nn.functional.mse_loss, config, objective=objective)
    assert not result.compiled and calls == [64, 64, 64, 64]
