"""Reconstruction: the server trains RecNet to map transformed images back to originals."""

from __future__ import annotations

from dataclasses import replace

import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import ServerKnowledge, expect
from obfaudit.attacks.registry import register_attack
from obfaudit.models import create_model
from obfaudit.train import predict, train_reconstructor


@register_attack("recnet")
class RecNet(Attack):
    """RecNet: ObfNet-MLP with N = 1024, trained with an MSE pixel loss on the training split."""

    party = Party.SERVER
    needs = ("train",)
    output = Output.IMAGE
    description = "server: RecNet (ObfNet-MLP, N=1024) trained on (transform(train), train) pairs"

    net: torch.nn.Module | None = None

    def fit(self, knowledge: ServerKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        cfg = replace(
            self.config.train,
            seed=self.config.seed,
            device=self.config.device,
            desc=f"{self.config.label}{self.name}",
        )
        z, x = knowledge.observed_train(), knowledge.train.x
        torch.manual_seed(cfg.seed)
        self.net = create_model("recnet", input_shape=tuple(z.shape[1:]), output_shape=tuple(x.shape[1:]))
        result = train_reconstructor(self.net, z, x, cfg)
        return {"trained_on": knowledge.train.name, "n_train": len(x), **result.to_dict()}

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before infer()")
        return predict(self.net, traffic, device=self.config.device).cpu()
