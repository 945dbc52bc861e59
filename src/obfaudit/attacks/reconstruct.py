"""Reconstruction: RecNet maps transformed images back to originals.

The server trains it on its training split (``recnet``); the eavesdropper trains the same
network on its own proxy images (``decoder``, :mod:`.decoder`).
"""

from __future__ import annotations

import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import ServerKnowledge, expect
from obfaudit.attacks.registry import register_attack
from obfaudit.models.attack_nets import describe
from obfaudit.train import TrainConfig, predict, train_reconstructor


class Reconstructor(Attack):
    """RecNet, trained with an MSE pixel loss from z to x: the study's ObfNet-MLP with N = 1024, or a
    convolutional decoder for spatial tensors (:mod:`obfaudit.models.attack_nets`)."""

    output = Output.IMAGE
    net: torch.nn.Module | None = None

    def _train(self, z: torch.Tensor, x: torch.Tensor, config: TrainConfig, trained_on) -> dict:
        self.net, cfg = self.config.network(
            "recnet",
            tuple(z.shape[1:]),
            len(x),
            config,
            f"{self.config.label}{self.name}",
            output_shape=tuple(x.shape[1:]),
        )
        result = train_reconstructor(self.net, z, x, cfg)
        return {
            "trained_on": trained_on,
            "n_train": len(x),
            "network": describe(self.net),
            **result.to_dict(),
        }

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before infer()")
        return predict(self.net, traffic, device=self.config.device).cpu()


@register_attack("recnet")
class RecNet(Reconstructor):
    """The server's RecNet, trained on its transformed training split."""

    party = Party.SERVER
    needs = ("train",)
    description = "server: RecNet (a decoder) trained on (transform(train), train) pairs"

    def fit(self, knowledge: ServerKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        return self._train(
            knowledge.observed_train(), knowledge.train.x, self.config.train, knowledge.train.name
        )
