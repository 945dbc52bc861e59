"""Train-and-evaluate steps shared by the CLI and the reproduction (no printing here)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from obfaudit.data import COLOUR, ImageSet
from obfaudit.models import Role, create_model, model_for
from obfaudit.train import TrainConfig, accuracy, predict, train_classifier, train_obfnet


def task_of(data: ImageSet | str) -> str:
    """The label an InfNet of ``data`` (images, or a dataset's name) learns: its dataset's task (the digit on
    MNIST, the shape on the generated shapes); the digit for data of no registered dataset."""
    from obfaudit.data import dataset_names, dataset_spec

    name = data if isinstance(data, str) else data.source
    if name in dataset_names() and dataset_spec(name).task:
        return dataset_spec(name).task
    return "digit"


def digit_accuracy(forward, data: ImageSet, device: str | torch.device = "cpu") -> float:
    """InfNet task accuracy (the digit on MNIST) of ``forward`` on ``data``."""
    return accuracy(predict(forward, data.x, device=device), data.labels[task_of(data)].to(device))


def fit_infnet(arch: str, train: ImageSet, test: ImageSet, config: TrainConfig) -> tuple[nn.Module, dict]:
    """Train an InfNet on the clean task (the digit on MNIST); return it and its metrics."""
    torch.manual_seed(config.seed)
    task = task_of(train)
    infnet = create_model(
        model_for(Role.INFNET, arch), input_shape=train.shape, classes=len(train.classes[task])
    )
    fit = train_classifier(infnet, train.x, train.labels[task], replace(config, desc=f"infnet-{arch}"))
    metrics = {"clean_test_acc": digit_accuracy(infnet, test, config.device), "fit": fit.to_dict()}
    return infnet.cpu(), metrics


def check_model_fits(info: dict, data: ImageSet, *, what: str) -> None:
    """Refuse a saved model whose input shape is not the data's, before any work.

    Args:
        info: the model's sidecar.
        data: the images it will receive.
        what: how the user gave it, e.g. "--infnet m/infnet-cnn-colored-mnist".
    """
    from obfaudit.errors import ObfauditError

    shape = list(info.get("input_shape", []))
    if shape and shape != list(data.shape):
        trained = f" (trained on {info['dataset']})" if info.get("dataset") else ""
        raise ObfauditError(
            f"{what} takes inputs of shape {tuple(shape)}{trained} but {data.source} images are "
            f"{tuple(data.shape)}: use a model trained on the same dataset"
        )


def fit_obfnet(
    arch: str,
    bottleneck: int,
    infnet: nn.Module,
    train: ImageSet,
    test: ImageSet,
    config: TrainConfig,
    *,
    infnet_dropout: bool = False,
    defence=None,
    attribute: str = COLOUR,
) -> tuple[nn.Module, dict]:
    """Train an ObfNet through the frozen InfNet; return it and its utility metrics.

    ``defence``: a :class:`obfaudit.defences.Defence` (None: today's ObfNet); one that needs
    the sensitive attribute trains on ``train.labels[attribute]``.
    """
    from obfaudit.errors import ObfauditError

    torch.manual_seed(config.seed)
    kwargs = defence.model_kwargs() if defence is not None else {}
    obfnet = create_model(
        model_for(Role.OBFUSCATOR, arch), input_shape=train.shape, bottleneck=bottleneck, **kwargs
    )
    labels = None
    if defence is not None and defence.needs_attribute:
        if attribute not in train.labels:
            raise ObfauditError(
                f"the {defence.name} defence needs the {attribute!r} labels, which {train.source} lacks"
            )
        labels = train.labels[attribute]
    label = f"-{defence.label}" if defence is not None and defence.name != "none" else ""
    fit = train_obfnet(
        obfnet,
        infnet,
        train.x,
        train.labels[task_of(train)],
        replace(config, desc=f"obfnet-{arch}-b{bottleneck}{label}"),
        infnet_dropout=infnet_dropout,
        defence=defence,
        attribute=labels,
    )
    metrics = {
        "obfuscated_test_acc": digit_accuracy(lambda x: infnet(obfnet(x)), test, config.device),
        "clean_test_acc": digit_accuracy(infnet, test, config.device),
        "infnet_mode_during_training": "dropout active (reference Keras)" if infnet_dropout else "eval",
        "fit": fit.to_dict(),
    }
    if defence is not None:
        metrics["defence"] = {**defence.to_dict(), **defence.summary()}
        if labels is not None and defence.has_penalty:
            metrics["defence"].update(_measured_after(defence, obfnet, train, test, attribute, config))
        # the scale of what is sent before any noise: the noise defence's sigma means little
        # without it (an ObfNet can learn to send larger values)
        noise, obfnet.noise = getattr(obfnet, "noise", 0.0), 0.0
        z = predict(obfnet, test.x, device=config.device)
        obfnet.noise = noise
        metrics["signal_rms"] = float(z.pow(2).mean().sqrt())
    return obfnet.cpu(), metrics


#: Epochs of the fresh attribute classifier that checks an adversarially defended ObfNet.
FRESH_ATTACKER_EPOCHS = 10


def _measured_after(
    defence, obfnet: nn.Module, train: ImageSet, test: ImageSet, attribute: str, config
) -> dict:
    """What the finished obfuscator does on held-out images: the invariance distance of test
    counterfactual pairs, and, for a defence with adversaries, the test accuracy of a fresh
    attribute classifier of the in-training MLP's kind, trained on what it sends for the
    training images (the gap a co-trained adversary hides)."""
    out = {}
    obfnet.eval()
    if hasattr(defence, "counterfactual"):
        from obfaudit.defences.invariance import invariance_distance
        from obfaudit.train import as_float

        device = next(obfnet.parameters()).device  # where training left it (a GPU, maybe)
        x, a = as_float(test.x[:512]).to(device), test.labels[attribute][:512].to(device)
        with torch.no_grad():
            z, z_cf = obfnet(x), obfnet(defence.counterfactual(x, a))
        out["test_distance"] = float(invariance_distance(z, z_cf))
    if "adversaries" in defence.summary():
        from obfaudit.defences.adversarial import HIDDEN, _mlp

        z_train = predict(obfnet, train.x, device=config.device)
        z_test = predict(obfnet, test.x, device=config.device)
        classes = int(train.labels[attribute].max()) + 1
        torch.manual_seed(config.seed + 1)
        fresh = _mlp(tuple(z_train.shape[1:]), classes)
        fit = train_classifier(
            fresh,
            z_train,
            train.labels[attribute],
            replace(
                config, epochs=FRESH_ATTACKER_EPOCHS, patience=3, val_fraction=0.1, desc="fresh attacker"
            ),
        )
        acc = accuracy(predict(fresh, z_test, device=config.device), test.labels[attribute].to(config.device))
        out["fresh_attacker"] = {
            "arch": f"mlp({HIDDEN})",
            "test_acc": acc,
            "epochs_run": fit.epochs_run,
        }
    return out
