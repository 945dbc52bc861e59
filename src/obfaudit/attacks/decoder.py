"""The eavesdropper's reconstruction: a decoder trained on its own (T(proxy), proxy) pairs.

The adversary holds the public transform and images it made itself, so it can train
RecNet without the private training data: on every proxy set it has, transformed, mapped
back to the proxy images. It then decodes the traffic.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, expect
from obfaudit.attacks.registry import register_attack
from obfaudit.models import create_model
from obfaudit.train import predict, train_reconstructor


@register_attack("decoder")
class EavesdropperDecoder(Attack):
    """RecNet trained on the adversary's proxies (all of them, pooled)."""

    party = Party.ADVERSARY
    needs = ("proxy",)
    output = Output.IMAGE
    description = "adversary: RecNet trained on (transform(proxy), proxy) pairs of its own images"

    net: torch.nn.Module | None = None

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        names = sorted(knowledge.proxies)
        z = torch.cat([knowledge.observed_proxy(n) for n in names])
        x = torch.cat([knowledge.proxy(n).x for n in names])
        cfg = replace(
            self.config.proxy_train,
            seed=self.config.seed,
            device=self.config.device,
            desc=f"{self.config.label}{self.name}",
        )
        torch.manual_seed(cfg.seed)
        self.net = create_model("recnet", input_shape=tuple(z.shape[1:]), output_shape=tuple(x.shape[1:]))
        result = train_reconstructor(self.net, z, x, cfg)
        return {"trained_on": [knowledge.proxy(n).name for n in names], "n_train": len(x), **result.to_dict()}

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before infer()")
        return predict(self.net, traffic, device=self.config.device).cpu()
