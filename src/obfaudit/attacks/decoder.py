"""The eavesdropper's reconstruction: a decoder trained on its own (T(proxy), proxy) pairs.

The adversary holds the public transform and images it made itself, so it can train
RecNet without the private training data: on every proxy set it has, transformed, mapped
back to the proxy images. It then decodes the traffic. The trained decoder is kept in the
adversary's knowledge, so ``inversion-decoder`` starts from it without training another.
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
    slow = True
    description = "adversary: RecNet trained on (transform(proxy), proxy) pairs of its own images"
    # 30,000 proxy images: training both kinds took the README audit's decoder from minutes to 14.5
    both_kinds = False

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        key = ("decoder", self.config.seed)
        made = not knowledge.has_derived(key)
        self.net, fit = knowledge.derived(key, lambda: self._train_on_proxies(knowledge))
        self.upsample_to = tuple(fit["upsampled_to"]) if "upsampled_to" in fit else None
        return {**fit, "shared": not made}

    def _train_on_proxies(self, knowledge: AdversaryKnowledge) -> tuple[torch.nn.Module, dict]:
        names = sorted(knowledge.proxies)
        z, x = knowledge.observed_proxies(), knowledge.proxy_images()  # both in sorted-name order
        fit = self._train(z, x, self.config.proxy_train, [knowledge.proxy(n).name for n in names])
        return self.net, fit
