"""Reconstruction: RecNet maps transformed images back to originals.

The server trains it on its training split (``recnet``); the eavesdropper trains the same
network on its own proxy images (``decoder``, :mod:`.decoder`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import ServerKnowledge, expect
from obfaudit.attacks.registry import register_attack
from obfaudit.models.attack_nets import ConstantNetwork, all_alike, describe
from obfaudit.train import TrainConfig, as_float, hold_out, predict, train_reconstructor


def low_resolution(x: torch.Tensor, side: int | None) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) area-averaged to at most ``side`` pixels a side, keeping their aspect;
    as they are when already that small (or ``side`` is None)."""
    if side is None or x.dim() != 4 or max(x.shape[2:]) <= side:
        return x
    h, w = x.shape[2:]
    scale = side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x.float(), size=size, mode="area").to(x.dtype)


class Reconstructor(Attack):
    """RecNet, trained with an MSE pixel loss from z to x: the study's ObfNet-MLP with N = 1024, or a
    convolutional decoder for spatial tensors (:mod:`obfaudit.models.attack_nets`).

    With ``recon_side`` set (the screening audit) it learns the images at that lower resolution and
    its output is upsampled back to the images' size, so the judge and SSIM read it as any other."""

    output = Output.IMAGE
    screening = True
    cost = 6.0
    net: torch.nn.Module | None = None
    upsample_to: tuple[int, int] | None = None
    """The images' height and width, when the network reconstructs them smaller."""

    def _train(self, z: torch.Tensor, x: torch.Tensor, config: TrainConfig, trained_on) -> dict:
        small = low_resolution(x, self.config.recon_side)
        self.upsample_to = tuple(x.shape[2:]) if small.shape != x.shape else None
        x = small
        fit: dict = {"trained_on": trained_on, "n_train": len(x)}
        if self.upsample_to:
            fit.update(resolution=list(x.shape[2:]), upsampled_to=list(self.upsample_to))
        if all_alike(z):  # the same tensor for every image: the mean image is all any network can learn
            self.net = ConstantNetwork(as_float(x).mean(0))
            return {**fit, "network": describe(self.net), "alike": True}
        self.net, trained = self.trained_network(
            "recnet",
            z,
            config,
            lambda net, cfg: train_reconstructor(net, z, x, cfg),
            score=lambda net, cfg: _hold_out_ssim(net, z, x, cfg),
            output_shape=tuple(x.shape[1:]),
        )
        return {**fit, **trained}

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before infer()")
        out = predict(self.net, traffic, device=self.config.device).cpu()
        if self.upsample_to is not None:
            out = F.interpolate(out.float(), size=self.upsample_to, mode="bilinear", align_corners=False)
        return out


def _hold_out_ssim(
    net: torch.nn.Module, z: torch.Tensor, x: torch.Tensor, config: TrainConfig
) -> float | None:
    """The mean SSIM of ``net``'s reconstructions of the examples its training held out (None: none)."""
    from obfaudit.attacks.metrics import image_quality

    held = hold_out(len(x), config)
    if not len(held):
        return None
    return float(image_quality(predict(net, z[held], device=config.device).cpu(), as_float(x[held]))["ssim"])


@register_attack("recnet")
class RecNet(Reconstructor):
    """The server's RecNet, trained on its transformed training split."""

    party = Party.SERVER
    needs = ("train",)
    description = "server: RecNet (a decoder) trained on (transform(train), train) pairs"

    def fit(self, knowledge: ServerKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        # kept in the server's knowledge: inversion-recnet starts from it without training another
        key = ("recnet", self.config.seed)
        made = not knowledge.has_derived(key)
        self.net, fit = knowledge.derived(key, lambda: self._train_on_split(knowledge))
        self.upsample_to = tuple(fit["upsampled_to"]) if "upsampled_to" in fit else None
        return fit if made else {**fit, "shared": True}

    def _train_on_split(self, knowledge: ServerKnowledge) -> tuple[torch.nn.Module, dict]:
        fit = self._train(
            knowledge.observed_train(), knowledge.train.x, self.config.train, knowledge.train.name
        )
        return self.net, fit
