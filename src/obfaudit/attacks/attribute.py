"""Attribute inference: a ColorNet learns the attribute (colour) from transformed images.

The server's ColorNet trains on the transformed original training split; the adversary's
NoisyNet and PathNet train on transformed proxy data it generated (Noisy, Path).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from obfaudit.attacks.base import (
    AdversaryKnowledge,
    Attack,
    Knowledge,
    Observer,
    Party,
    ServerKnowledge,
)
from obfaudit.errors import ThreatModelError
from obfaudit.models import create_model
from obfaudit.train import TrainConfig, predict, train_classifier


class AttributeInference(Attack):
    """A ColorNet (InfNet-MLP with k outputs) trained on transformed images -> attribute."""

    def __init__(self, name: str, party: Party, *, config: TrainConfig, attribute: str = "colour"):
        self.name = name
        self.party = party
        self.config = config
        self.attribute = attribute
        self.net: torch.nn.Module | None = None

    def fit(self, observe: Observer, knowledge: Knowledge) -> dict:
        expected = ServerKnowledge if self.party is Party.SERVER else AdversaryKnowledge
        if not isinstance(knowledge, expected):
            raise ThreatModelError(f"{self.name} runs as the {self.party}: it takes {expected.__name__}")
        data = knowledge.data
        if self.attribute not in data.labels:
            raise ValueError(f"{data.name} has no {self.attribute!r} labels to learn from")
        z = observe(data)
        classes = len(data.classes[self.attribute])
        torch.manual_seed(self.config.seed)
        self.net = create_model("colornet", input_shape=tuple(z.shape[1:]), classes=classes)
        result = train_classifier(
            self.net, z, data.labels[self.attribute], replace(self.config, desc=self.name)
        )
        return {"trained_on": data.name, "n_train": len(data), **result.to_dict()}

    def infer(self, z: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before infer()")
        return predict(self.net, z, device=self.config.device).argmax(dim=1).cpu()


def colornet(config: TrainConfig) -> AttributeInference:
    """The server's ColorNet."""
    return AttributeInference("colornet", Party.SERVER, config=config)


def proxy_net(proxy: str, config: TrainConfig) -> AttributeInference:
    """The adversary's NoisyNet or PathNet (a ColorNet trained on a proxy dataset)."""
    return AttributeInference(f"{proxy}net", Party.ADVERSARY, config=config)
