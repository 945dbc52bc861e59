"""The eavesdropper's reconstruction: a decoder trained on its own (T(proxy), proxy) pairs.

The adversary holds the public transform and images it made itself, so it can train
RecNet without the private training data: on every proxy set it has, transformed, mapped
back to the proxy images. It then decodes the traffic.
"""

from __future__ import annotations

import torch

from obfaudit.attacks.base import Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, expect
from obfaudit.attacks.reconstruct import Reconstructor
from obfaudit.attacks.registry import register_attack


@register_attack("decoder")
class EavesdropperDecoder(Reconstructor):
    """RecNet trained on the adversary's proxies (all of them, pooled)."""

    party = Party.ADVERSARY
    needs = ("proxy",)
    description = "adversary: RecNet trained on (transform(proxy), proxy) pairs of its own images"

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        names = sorted(knowledge.proxies)
        z = torch.cat([knowledge.observed_proxy(n) for n in names])
        x = torch.cat([knowledge.proxy(n).x for n in names])
        return self._train(z, x, self.config.proxy_train, [knowledge.proxy(n).name for n in names])
