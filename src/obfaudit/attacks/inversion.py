"""White-box inversion: recover x from z = T(x) by optimisation, since the transform is public.

He et al. ("Model inversion attacks against collaborative inference", rMLE) and UnSplit
minimise ||T(x') - z||^2 + lambda * TV(x') over candidate images x'. Here x' = sigmoid(w)
keeps every pixel in [0, 1]; Adam runs a fixed number of steps on the whole traffic in
batches. It needs nothing but the transform and what is sent, so the eavesdropper can run
it (and so can the server). A transform that is not differentiable (an ONNX graph, numpy
code) is not offered to it: its need ``gradients`` is unmet.

``inversion`` starts from random images; ``inversion-decoder`` starts from the
eavesdropper's decoder output (:mod:`.decoder`), with the same objective and budget. From
a random start the optimiser finds other preimages of z through a trained ObfNet; from the
decoder's guess it refines towards the true one (measured in ``benchmarks/attack_cost.py``).
"""

from __future__ import annotations

import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.decoder import EavesdropperDecoder
from obfaudit.attacks.knowledge import AdversaryKnowledge, expect
from obfaudit.attacks.registry import register_attack
from obfaudit.train import autocast, fill_rows

# Measured on 50 Colored-MNIST test images through the identity transform: Adam at 0.1 on the
# logits reached SSIM 0.52 in 300 steps (dark backgrounds converge slowly), 0.5 reached 0.96,
# 1.0 reached 0.999; through trained ObfNets 0.5 did better than 1.0 (SSIM 0.04-0.14 vs
# 0.03-0.10, 40 images): from a random start, inversion finds other preimages of z.
# bfloat16 autocast (the presets' precision) halves the time per step through ObfNet-CNN on
# this CPU with the same scores (SSIM and F_a within 0.001 on ObfNet-CNN(1024), 1,000 images).
STEPS = 300
LR = 0.5
TV_WEIGHT = 1e-3
BATCH = 500


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per image (anisotropic TV)."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


def invert(
    transform,
    z: torch.Tensor,
    shape: tuple[int, int, int],
    *,
    steps: int = STEPS,
    lr: float = LR,
    tv: float = TV_WEIGHT,
    seed: int = 0,
    device: str = "cpu",
    batch: int = BATCH,
    start: torch.Tensor | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Images x' in [0, 1] of ``shape`` whose transforms match ``z``, by Adam on sigmoid logits.

    ``start``: first guesses in [0, 1] (one per row of ``z``); None starts near grey at random.
    ``precision``: "bf16" runs the transform under bfloat16 autocast; the images stay float32.
    """
    if start is not None and len(start) != len(z):
        raise ValueError(f"{len(start)} starting images for {len(z)} targets")
    g = torch.Generator().manual_seed(seed)
    # Only the candidate images are optimised: the transform's own weights need no gradients.
    module = getattr(transform, "transform", transform)
    frozen = (
        [(p, p.requires_grad) for p in module.parameters()] if isinstance(module, torch.nn.Module) else []
    )
    for p, _ in frozen:
        p.requires_grad_(False)
    try:
        return _invert(transform, z, shape, steps, lr, tv, g, torch.device(device), batch, start, precision)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)


def _invert(transform, z, shape, steps, lr, tv, g, device, batch, start, precision) -> torch.Tensor:
    out = None
    for i in range(0, len(z), batch):
        target = z[i : i + batch].to(device).float()
        if start is None:
            w = 0.1 * torch.randn(len(target), *shape, generator=g)
        else:
            w = torch.logit(start[i : i + batch].float().clamp(1e-3, 1 - 1e-3))
        w = w.to(device).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            x = torch.sigmoid(w)
            with autocast(device, precision):
                sent = transform(x)
            fit = (sent.float() - target).pow(2).flatten(1).mean(dim=1)
            loss = (fit + tv * total_variation(x)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out = fill_rows(out, torch.sigmoid(w).detach(), i, len(target), len(z), "cpu")
    return out if out is not None else torch.empty(0, *shape)


@register_attack("inversion")
class WhiteBoxInversion(Attack):
    """Optimisation-based inversion of the public transform (rMLE with a TV prior)."""

    party = Party.ADVERSARY
    needs = ("transform", "gradients")
    output = Output.IMAGE
    slow = True
    description = "adversary (or server): invert the public transform by gradient descent with a TV prior"

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        self._transform = knowledge.transform
        self._shape = knowledge.input_shape
        return {"steps": STEPS, "lr": LR, "tv_weight": TV_WEIGHT, "start": "random"}

    def _start(self, traffic: torch.Tensor) -> torch.Tensor | None:
        return None

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        start = self._start(traffic)
        with torch.enable_grad():
            return invert(
                self._transform,
                traffic,
                self._shape,
                seed=self.config.seed,
                device=self.config.device,
                start=start,
                precision=self.config.train.precision,
            )


@register_attack("inversion-decoder")
class DecoderStartedInversion(WhiteBoxInversion):
    """The same inversion, started from the eavesdropper's decoder output instead of noise."""

    needs = ("transform", "gradients", "proxy")
    description = "adversary: invert the public transform starting from its decoder's reconstruction"

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        fit = super().fit(knowledge)
        # the decoder the `decoder` attack trained on the same knowledge, when it ran first
        self._decoder = EavesdropperDecoder(self.config)
        return {**fit, "start": "decoder", "decoder": self._decoder.fit(knowledge)}

    def _start(self, traffic: torch.Tensor) -> torch.Tensor:
        return self._decoder.infer(traffic)
