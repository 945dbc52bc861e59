"""Reference inverses: what anyone who knows the transform gets back without training anything.

An auditor is only as strong as its strongest attack, and some transforms have an obvious
inverse that a learned attack can miss: what 4x4 average pooling sends, upsampled, is the
image at a quarter of its resolution (22.8 dB on 64x64 shapes, where a RecNet trained on the
same data reached 20.4); a linear map with as many outputs as inputs is undone exactly by its
pseudo-inverse. ``reference`` computes, per test image, the best of these that apply:

- **upsampling** of what is sent, when it is an image of the input's channels at the input's
  size or smaller (nearest neighbour, which undoes average pooling block by block, and
  bilinear);
- **the least-squares (pseudo-) inverse**, when the transform is affine on the images
  (checked on random images: T(a x + b y) = a T(x) + b T(y) up to float error) and passes
  gradients: the minimum-norm solution of T(x) = z by conjugate gradients on the normal
  equations (CGLS), each product with the transform's matrix or its transpose one forward
  pass or one backward pass through it, so the matrix is never built.

Of the candidates, each image keeps the one with the lowest inversion objective (how far its
transform is from what was sent, plus the TV prior of :mod:`.inversion`): the attacker picks
without the true image. ``inversion-reference`` (:mod:`.inversion`) then refines it by the
white-box inversion. Where neither applies (a non-linear transform that sends another shape:
a trained ObfNet, a cut of a network), the attack says so and does not run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from obfaudit.attacks.base import Attack, NotApplicable, Output, Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, expect
from obfaudit.attacks.prior import TV_WEIGHT, total_variation
from obfaudit.attacks.registry import register_attack

#: CGLS iterations (each a forward and a backward pass through the transform); it stops sooner
#: once the normal equations' residual has fallen by this factor.
CG_STEPS = 200
CG_TOLERANCE = 1e-6
#: Relative error up to which the transform counts as affine on the images.
LINEAR_TOLERANCE = 1e-3
BATCH = 100


def _sent(transform, x: torch.Tensor) -> torch.Tensor:
    return transform(x).float().reshape(len(x), -1)


@torch.no_grad()
def is_affine(
    transform, shape: tuple[int, ...], *, seed: int = 0, device: str | torch.device = "cpu"
) -> bool:
    """Whether ``transform`` maps images of ``shape`` affinely: T(a u + b v) - T(0) equals
    a (T(u) - T(0)) + b (T(v) - T(0)) on random images u, v, up to float error."""
    g = torch.Generator().manual_seed(seed)
    u, v = torch.rand(2, 4, *shape, generator=g).to(device)
    zero = _sent(transform, torch.zeros(1, *shape, device=device))
    tu, tv = _sent(transform, u) - zero, _sent(transform, v) - zero
    mixed = _sent(transform, 0.3 * u + 0.6 * v) - zero
    expected = 0.3 * tu + 0.6 * tv
    scale = max(float(expected.abs().max()), 1e-12)
    return bool(float((mixed - expected).abs().max()) <= LINEAR_TOLERANCE * scale)


def least_squares(
    transform, z: torch.Tensor, shape: tuple[int, ...], *, steps: int = CG_STEPS
) -> torch.Tensor:
    """The minimum-norm x with T(x) closest to ``z`` for an affine T, per row (CGLS from zero)."""
    n, device = len(z), z.device
    offset = _sent(transform, torch.zeros(1, *shape, device=device)).detach()
    target = z.float().reshape(n, -1) - offset

    def forward(p: torch.Tensor) -> torch.Tensor:  # A p
        with torch.no_grad():
            return _sent(transform, p) - offset

    def backward(r: torch.Tensor) -> torch.Tensor:  # A^T r
        x = torch.zeros(n, *shape, device=device, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(_sent(transform, x), x, grad_outputs=r)
        return grad

    x = torch.zeros(n, *shape, device=device)
    r = target.clone()
    s = backward(r)
    p = s.clone()
    gamma = s.flatten(1).pow(2).sum(1)
    first = gamma.clone()
    for _ in range(steps):
        q = forward(p)
        alpha = gamma / q.pow(2).sum(1).clamp_min(1e-30)
        x += alpha.view(-1, *[1] * len(shape)) * p
        r -= alpha[:, None] * q
        s = backward(r)
        new = s.flatten(1).pow(2).sum(1)
        if bool((new <= CG_TOLERANCE**2 * first.clamp_min(1e-30)).all()):
            break
        p = s + (new / gamma.clamp_min(1e-30)).view(-1, *[1] * len(shape)) * p
        gamma = new
    return x


def upsampled(z: torch.Tensor, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """What is sent, as an image of ``shape`` (C, H, W), when it is an image of C channels at H x W or
    smaller: nearest-neighbour and bilinear upsampling; else nothing."""
    c, h, w = shape
    if z.dim() != 4 or z.shape[1] != c or z.shape[2] > h or z.shape[3] > w:
        return {}
    z = z.float()
    return {
        "nearest": F.interpolate(z, size=(h, w), mode="nearest"),
        "bilinear": F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False),
    }


@register_attack("reference")
class ReferenceInverse(Attack):
    """The transform's closed-form inverse, no training: upsampling, or the least-squares inverse."""

    party = Party.ADVERSARY
    needs = ("transform",)
    output = Output.IMAGE
    screening = True
    cost = 1.0
    description = (
        "adversary (or server): the transform undone without training: what is sent upsampled, or its "
        "least-squares inverse when the transform is linear"
    )

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        from obfaudit.attacks.auditor import differentiable

        expect(knowledge, self.party, self.name)
        self._transform, self._shape = knowledge.transform, tuple(knowledge.input_shape)
        self._device = torch.device(self.config.device)
        g = torch.Generator().manual_seed(self.config.seed)
        probe = torch.rand(2, *self._shape, generator=g).to(self._device)
        with torch.no_grad():
            sent = knowledge.transform(probe)
        self._upsampling = bool(upsampled(sent, self._shape))
        self._linear = differentiable(knowledge.transform, probe) and is_affine(
            knowledge.transform, self._shape, seed=self.config.seed, device=self._device
        )
        if not (self._upsampling or self._linear):
            raise NotApplicable(
                f"no reference inverse applies: it sends {tuple(sent.shape[1:])} for images of "
                f"{self._shape}, not an image of their channels at their size or smaller, and is not "
                "linear with gradients"
            )
        self._chosen: dict[str, int] = {}
        return {"upsampling": self._upsampling, "least_squares": self._linear, "chosen": self._chosen}

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        from obfaudit.train import fill_rows

        out = None
        for i in range(0, len(traffic), BATCH):
            z = traffic[i : i + BATCH].float().to(self._device)
            candidates = upsampled(z, self._shape) if self._upsampling else {}
            if self._linear:
                candidates["least-squares"] = least_squares(self._transform, z, self._shape)
            names = list(candidates)
            stacked = torch.stack([candidates[k].clamp(0, 1) for k in names])  # (K, n, C, H, W)
            with torch.no_grad():
                objective = torch.stack(
                    [
                        (_sent(self._transform, x) - z.reshape(len(z), -1)).pow(2).mean(1)
                        + TV_WEIGHT * total_variation(x)
                        for x in stacked
                    ]
                )
            best = objective.argmin(0)  # per image: what the attacker can tell without the truth
            for k, count in zip(*best.unique(return_counts=True), strict=True):
                self._chosen[names[k]] = self._chosen.get(names[k], 0) + int(count)
            picked = stacked[best, torch.arange(len(z))]
            out = fill_rows(out, picked.cpu(), i, len(z), len(traffic), "cpu")
        return out
