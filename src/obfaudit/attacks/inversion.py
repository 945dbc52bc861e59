"""White-box inversion: recover x from z = T(x) by optimisation, since the transform is public.

He et al. ("Model inversion attacks against collaborative inference", rMLE) and UnSplit
minimise ||T(x') - z||^2 + lambda * TV(x') over candidate images x'. Here x' = sigmoid(w)
keeps every pixel in [0, 1]; Adam runs on the whole traffic in batches, for at most a fixed
number of steps, and a batch stops early once its objective has stopped falling (by less than
0.5% in 25 steps, twice in a row). It needs nothing but the transform and what is sent, so the
eavesdropper can run it (and so can the server). A transform that passes no gradients (numpy code,
torch code under ``no_grad``, an ONNX graph that cannot be converted to PyTorch) is not offered to
it: its need ``gradients`` is unmet.

``inversion`` starts from random images; ``inversion-decoder`` from the eavesdropper's decoder
output (:mod:`.decoder`) and ``inversion-recnet`` from the server's RecNet output
(:mod:`.reconstruct`), with the same objective and budget. From a random start the optimiser
finds other preimages of z through a trained ObfNet; from a decoder's guess it refines towards
the true one (measured in ``benchmarks/attack_cost.py``), and from a good guess it has less to do.
"""

from __future__ import annotations

import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.decoder import EavesdropperDecoder
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, expect
from obfaudit.attacks.prior import TV_WEIGHT, total_variation
from obfaudit.attacks.reconstruct import RecNet, Reconstructor
from obfaudit.attacks.reference import ReferenceInverse
from obfaudit.attacks.registry import register_attack
from obfaudit.models.attack_nets import all_alike
from obfaudit.train import autocast, fill_rows

# Measured on 50 Colored-MNIST test images through the identity transform: Adam at 0.1 on the
# logits reached SSIM 0.52 in 300 steps (dark backgrounds converge slowly), 0.5 reached 0.96,
# 1.0 reached 0.999; through trained ObfNets 0.5 did better than 1.0 (SSIM 0.04-0.14 vs
# 0.03-0.10, 40 images): from a random start, inversion finds other preimages of z.
# bfloat16 autocast (the presets' precision) halves the time per step through ObfNet-CNN on
# this CPU with the same scores (SSIM and F_a within 0.001 on ObfNet-CNN(1024), 1,000 images).
STEPS = 300
LR = 0.5
#: Images inverted at once: on a CPU 100, whose tensors stay nearer the caches (the step is mostly
#: elementwise passes over them: 113 us per 64x64 image and step through the identity on one thread,
#: 146 us in batches of 500); on a GPU 500, fewer and fuller kernels.
BATCH = {"cpu": 100, "cuda": 500}
#: A batch stops once its objective fell by less than TOLERANCE (relative) over CHECK_EVERY steps, twice in
#: a row: it has converged to what this optimiser finds. Measured on 100 test images with a one-check rule:
#: through the identity on Colored-MNIST and on 64x64 shapes every batch still ran its 300 steps (the same
#: SSIM as without the rule); started from a RecNet's reconstruction of 64x64 shapes sent losslessly (space
#: to depth), it stopped at 100. Asking for two flat checks in a row (one noisy check no longer ends a batch)
#: moves each stop CHECK_EVERY steps later. With 1% instead, Colored-MNIST's identity stopped at 225-250
#: steps, SSIM 0.957 against 0.959: not kept. Traffic that is the same for every image is not inverted at all.
CHECK_EVERY = 25
TOLERANCE = 0.005


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
    batch: int | None = None,
    start: torch.Tensor | None = None,
    precision: str = "fp32",
    tolerance: float | None = TOLERANCE,
    stats: dict | None = None,
) -> torch.Tensor:
    """Images x' in [0, 1] of ``shape`` whose transforms match ``z``, by Adam on sigmoid logits.

    ``start``: first guesses in [0, 1] (one per row of ``z``); None starts near grey at random.
    ``precision``: "bf16" runs the transform under bfloat16 autocast; the images stay float32.
    ``batch``: images inverted at once (default :data:`BATCH` for the device).
    ``tolerance``: a batch stops when its objective fell by less than this share over
    :data:`CHECK_EVERY` steps (None: always ``steps`` steps). ``stats``, when given, receives the
    steps each batch ran (``steps_run``).
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
    ran: list[int] = []
    try:
        device = torch.device(device)
        batch = batch or BATCH.get(device.type, BATCH["cuda"])
        out = None
        for i in range(0, len(z), batch):
            target = z[i : i + batch].to(device).float()
            guess = None if start is None else start[i : i + batch]
            x, n = _invert_batch(
                transform, target, shape, steps, lr, tv, g, device, guess, precision, tolerance
            )
            out = fill_rows(out, x, i, len(target), len(z), "cpu")
            ran.append(n)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    if stats is not None:
        stats["steps_run"] = ran
    return out if out is not None else torch.empty(0, *shape)


def _invert_batch(transform, target, shape, steps, lr, tv, g, device, start, precision, tolerance):
    """One batch's inversion: (the images, the steps it ran)."""
    if start is None:
        w = 0.1 * torch.randn(len(target), *shape, generator=g)
    else:
        w = torch.logit(start.float().clamp(1e-3, 1 - 1e-3))
    w = w.to(device).requires_grad_(True)
    # fused: the update of every pixel's logit in one pass (the step is mostly such passes)
    opt = torch.optim.Adam([w], lr=lr, fused=device.type in ("cpu", "cuda") or None)
    before, flat = None, 0
    step = 0
    for step in range(1, steps + 1):
        x = torch.sigmoid(w)
        with autocast(device, precision):
            sent = transform(x)
        fit = (sent.float() - target).pow(2).flatten(1).mean(dim=1)
        loss = (fit + tv * total_variation(x)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if tolerance is not None and step % CHECK_EVERY == 0:
            now = float(loss.detach())
            # two checks in a row without the improvement (Adam at this rate is not monotone: one uptick is
            # no convergence); an objective at 0 counts as flat too
            flat = flat + 1 if before is not None and before - now <= tolerance * abs(before) else 0
            if flat == 2:
                break
            before = now
    return torch.sigmoid(w).detach(), step


@register_attack("inversion")
class WhiteBoxInversion(Attack):
    """Optimisation-based inversion of the public transform (rMLE with a TV prior)."""

    party = Party.ADVERSARY
    needs = ("transform", "gradients")
    output = Output.IMAGE
    slow = True
    cost = 6.0
    description = "adversary (or server): invert the public transform by gradient descent with a TV prior"
    start = "random"

    def fit(self, knowledge: AdversaryKnowledge | ServerKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        self._transform = knowledge.transform
        self._shape = knowledge.input_shape
        self._steps: list[int] = []
        self._fit = {
            "steps": STEPS,
            "lr": LR,
            "tv_weight": TV_WEIGHT,
            "tolerance": TOLERANCE,
            "start": self.start,
            "steps_run": self._steps,  # each batch's, filled by infer
        }
        return self._fit

    def _start(self, traffic: torch.Tensor) -> torch.Tensor | None:
        return None

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        start = self._start(traffic)
        if all_alike(traffic):
            # the same tensor for every image (the null control): whatever an inversion finds, it finds
            # for every image alike, so it can tell nothing of any; its start is as good as any answer
            self._fit["alike"] = True
            shape = (len(traffic), *self._shape)
            return start.float().clamp(0, 1) if start is not None else torch.full(shape, 0.5)
        stats: dict = {}
        with torch.enable_grad():
            out = invert(
                self._transform,
                traffic,
                self._shape,
                seed=self.config.seed,
                device=self.config.device,
                start=start,
                precision=self.config.train.precision,
                stats=stats,
            )
        self._steps.extend(stats["steps_run"])
        return out


class StartedInversion(WhiteBoxInversion):
    """The inversion started from the reconstruction of another attack of the same party (its
    :attr:`starts_from`), whose network the party trained once for both (see ``derived``)."""

    starter: type[Reconstructor] | type[ReferenceInverse]

    def fit(self, knowledge: AdversaryKnowledge | ServerKnowledge) -> dict:
        fit = super().fit(knowledge)
        self._starter = self.starter(self.config)
        fit[self.start] = self._starter.fit(knowledge)
        return fit

    def _start(self, traffic: torch.Tensor) -> torch.Tensor:
        return self._starter.infer(traffic)


@register_attack("inversion-decoder")
class DecoderStartedInversion(StartedInversion):
    """The same inversion, started from the eavesdropper's decoder output instead of noise."""

    needs = ("transform", "gradients", "proxy")
    description = "adversary: invert the public transform starting from its decoder's reconstruction"
    start = starts_from = "decoder"
    starter = EavesdropperDecoder


@register_attack("inversion-recnet")
class RecNetStartedInversion(StartedInversion):
    """The server's inversion of the transform it knows, started from its RecNet's reconstruction."""

    party = Party.SERVER
    needs = ("train", "transform", "gradients")
    description = "server: invert the public transform starting from its RecNet's reconstruction"
    start = starts_from = "recnet"
    starter = RecNet


@register_attack("inversion-reference")
class ReferenceStartedInversion(StartedInversion):
    """The inversion started from the transform's reference inverse (:mod:`.reference`): from the
    upsampled or least-squares image, refined towards one that fits what was sent under the TV prior."""

    needs = ("transform", "gradients")
    description = "adversary (or server): invert the public transform starting from its reference inverse"
    start = starts_from = "reference"
    starter = ReferenceInverse
