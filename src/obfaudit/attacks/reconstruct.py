"""Reconstruction: the server trains RecNet to map transformed images back to originals."""

from __future__ import annotations

from dataclasses import replace

import torch

from obfaudit.attacks.base import Attack, Observer, Party, ServerKnowledge
from obfaudit.errors import ThreatModelError
from obfaudit.models import create_model
from obfaudit.train import TrainConfig, predict, train_reconstructor


class Reconstruction(Attack):
    """RecNet: ObfNet-MLP with N = 1024, trained with an MSE pixel loss (server only)."""

    name = "recnet"
    party = Party.SERVER

    def __init__(self, *, config: TrainConfig) -> None:
        self.config = config
        self.net: torch.nn.Module | None = None

    def fit(self, observe: Observer, knowledge: ServerKnowledge) -> dict:
        if not isinstance(knowledge, ServerKnowledge):
            raise ThreatModelError("RecNet needs the original training data: only the server runs it")
        z, x = observe(knowledge.train), knowledge.train.x
        torch.manual_seed(self.config.seed)
        self.net = create_model("recnet", input_shape=tuple(z.shape[1:]), output_shape=tuple(x.shape[1:]))
        result = train_reconstructor(self.net, z, x, replace(self.config, desc="recnet"))
        return {"trained_on": knowledge.train.name, "n_train": len(x), **result.to_dict()}

    def infer(self, z: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("recnet: call fit() before infer()")
        return predict(self.net, z, device=self.config.device).cpu()
