"""The independent judge of reconstructions: an attribute classifier on clean images.

What a reconstruction reveals of the attribute is read by a classifier trained on the
clean training images (the server's knowledge), not by the attacker that made it. For
colour, the palette reading (no training) is reported beside it.
"""

from __future__ import annotations

from torch import nn

from obfaudit.attacks.base import AttackSettings
from obfaudit.data import ImageSet
from obfaudit.train import train_classifier


def train_attribute_judge(train: ImageSet, attribute: str, settings: AttackSettings) -> nn.Module:
    """An attribute classifier of ``attribute`` trained on the clean images of ``train``: the attacks'
    classifier for images of this shape (``settings.nets``), trained as they are (``settings.train``)."""
    judge, config = settings.network(
        "colornet",
        train.shape,
        len(train),
        settings.train,
        f"judge of {attribute}",
        classes=len(train.classes[attribute]),
    )
    train_classifier(judge, train.x, train.labels[attribute], config)
    return judge.eval()
