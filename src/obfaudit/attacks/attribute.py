"""Attribute inference: a ColorNet learns the sensitive attribute from transformed images.

The server's ColorNet trains on the transformed original training split; the adversary's
NoisyNet and PathNet train on transformed proxy data it generated (Noisy, Path).
"""

from __future__ import annotations

import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, expect
from obfaudit.attacks.registry import register_attack
from obfaudit.data import ImageSet
from obfaudit.errors import ObfauditError
from obfaudit.models.attack_nets import ConstantNetwork, all_alike, describe
from obfaudit.train import TrainConfig, predict, train_classifier


class AttributeClassifier(Attack):
    """A ColorNet trained on transformed images -> attribute: the study's InfNet-MLP with k outputs, or a
    convolutional classifier for spatial tensors (:mod:`obfaudit.models.attack_nets`)."""

    output = Output.ATTRIBUTE
    screening = True
    cost = 2.0
    net: torch.nn.Module | None = None

    def _train(self, z: torch.Tensor, data: ImageSet, config: TrainConfig) -> dict:
        attribute = self.config.attribute
        if attribute not in data.labels:
            raise ObfauditError(f"{data.name} has no {attribute!r} labels for {self.name} to learn from")
        classes = len(data.classes[attribute])
        if all_alike(z):  # the same tensor for every image: the commonest value is all any network can learn
            counts = torch.bincount(data.labels[attribute], minlength=classes).float()
            self.net = ConstantNetwork(torch.log((counts + 1e-6) / counts.sum()))
            return {
                "trained_on": data.name,
                "n_train": len(data),
                "network": describe(self.net),
                "alike": True,
            }
        y = data.labels[attribute]
        self.net, trained = self.trained_network(
            "colornet", z, config, lambda net, cfg: train_classifier(net, z, y, cfg), classes=classes
        )
        return {"trained_on": data.name, "n_train": len(data), **trained}

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before infer()")
        return predict(self.net, traffic, device=self.config.device).argmax(dim=1).cpu()


@register_attack("colornet")
class ColorNet(AttributeClassifier):
    """The server's ColorNet, trained on the transformed training split with its labels."""

    party = Party.SERVER
    needs = ("train", "attribute")
    description = "server: ColorNet (an attribute classifier) trained on the transformed training split"

    def fit(self, knowledge: ServerKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        return self._train(knowledge.observed_train(), knowledge.train, self.config.train)


class ProxyColorNet(AttributeClassifier):
    """The adversary's ColorNet, trained on its own transformed proxy data only."""

    party = Party.ADVERSARY
    proxy: str = ""
    # trained on tens of thousands of proxy images: both kinds doubled the README audit's longest stages
    both_kinds = False

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        return self._train(
            knowledge.observed_proxy(self.proxy), knowledge.proxy(self.proxy), self.config.proxy_train
        )


@register_attack("noisynet")
class NoisyNet(ProxyColorNet):
    proxy = "noisy"
    needs = ("proxy:noisy", "attribute")
    description = "adversary: ColorNet trained on transformed Noisy proxy images it generated"


@register_attack("pathnet")
class PathNet(ProxyColorNet):
    proxy = "path"
    needs = ("proxy:path", "attribute")
    description = "adversary: ColorNet trained on transformed Path proxy images it generated"


@register_attack("proxynet")
class FolderNet(ProxyColorNet):
    proxy = "folder"
    needs = ("proxy:folder", "attribute")
    description = "adversary: attribute classifier trained on its own images (--proxy DIR), transformed"
