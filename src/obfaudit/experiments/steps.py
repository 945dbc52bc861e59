"""Train-and-evaluate steps shared by the CLI and the reproduction (no printing here)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from obfaudit.data import ImageSet
from obfaudit.models import Role, create_model, model_for
from obfaudit.train import TrainConfig, accuracy, predict, train_classifier, train_obfnet


def digit_accuracy(forward, data: ImageSet, device: str | torch.device = "cpu") -> float:
    """InfNet digit accuracy of ``forward`` on ``data``."""
    return accuracy(predict(forward, data.x, device=device), data.labels["digit"].to(device))


def fit_infnet(arch: str, train: ImageSet, test: ImageSet, config: TrainConfig) -> tuple[nn.Module, dict]:
    """Train an InfNet on the clean digit task; return it and its metrics."""
    torch.manual_seed(config.seed)
    infnet = create_model(
        model_for(Role.INFNET, arch), input_shape=train.shape, classes=len(train.classes["digit"])
    )
    fit = train_classifier(infnet, train.x, train.labels["digit"], replace(config, desc=f"infnet-{arch}"))
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
    attribute: str = "colour",
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
        train.labels["digit"],
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
        metrics["defence"] = defence.to_dict()
        # the scale of what is sent before any noise: the noise defence's sigma means little
        # without it (an ObfNet can learn to send larger values)
        noise, obfnet.noise = getattr(obfnet, "noise", 0.0), 0.0
        z = predict(obfnet, test.x, device=config.device)
        obfnet.noise = noise
        metrics["signal_rms"] = float(z.pow(2).mean().sqrt())
    return obfnet.cpu(), metrics
