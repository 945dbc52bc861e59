"""The independent judge of reconstructions: an attribute classifier on clean images.

What a reconstruction reveals of the attribute is read by a classifier trained on the
clean training images (the server's knowledge), not by the attacker that made it. For
colour, the palette reading (no training) is reported beside it.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from obfaudit.data import ImageSet
from obfaudit.models import create_model
from obfaudit.train import TrainConfig, train_classifier


def train_attribute_judge(train: ImageSet, attribute: str, config: TrainConfig) -> nn.Module:
    """A ColorNet-shaped classifier of ``attribute`` trained on the clean images of ``train``."""
    torch.manual_seed(config.seed)
    judge = create_model("colornet", input_shape=train.shape, classes=len(train.classes[attribute]))
    train_classifier(judge, train.x, train.labels[attribute], replace(config, desc=f"judge of {attribute}"))
    return judge.eval()
