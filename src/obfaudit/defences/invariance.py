"""Invariance: the obfuscator sends the same tensor whatever the sensitive attribute is.

For every training image x with attribute a, a counterfactual x' is the same image with the
attribute changed to another value a' (drawn uniformly among the others, anew each batch).
The obfuscator pays lambda times the mean squared difference of what it sends for the two,
per value sent: 0 when T ignores the attribute. (A scale-free form, divided by the batch's
spread, was tried first: it rewarded shrinking everything, and at lambda 10 the ObfNet-MLP
collapsed to a constant output and 10% utility.) The sidecar keeps the scale-free distance on
held-out test pairs (``test_distance``: the pairs' distance over the expected distance of two
different images; 0 invariant, about 1 no better than unrelated images).

An obfuscator with penalty 0 for every value sends nothing that depends on the attribute
beyond what the rest of the image carries, so no attacker, however strong, reads more than
that from it: what adversarial training can only hope for against the adversaries it trains
with, invariance asks of the mapping itself.

The counterfactual must be exact for that argument to hold. For Colored-MNIST's colour it is:
each image is a grey digit times a palette colour whose brightest channel is 1, so the digit
is the channels' maximum and recolouring is that times the new colour. For any other
attribute the user gives ``counterfactual``: ``MODULE:CALLABLE``, a function (images (n, C, H,
W) in [0, 1], target attribute (n,) int64) -> images of the same shape with that attribute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from obfaudit.data import COLOUR
from obfaudit.data.base import PALETTE_TENSOR
from obfaudit.defences.base import Defence, TrainingContext, register_defence
from obfaudit.errors import ObfauditError

Counterfactual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RECOLOUR = "builtin:recolour"
RAMP_EPOCHS = 1
"""The weight rises linearly to lambda over the first epoch: at full weight from the first step,
lambda 1000 drove every hidden unit of ObfNet-MLP(64) dead within the first epoch (a constant
output, 10% utility)."""


def recolour(images: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Colored-MNIST images with each digit in the palette colour ``colour`` (exact)."""
    grey = images.amax(dim=1, keepdim=True)
    return grey * PALETTE_TENSOR.to(images.device)[colour].view(-1, images.shape[1], 1, 1)


def invariance_distance(z: torch.Tensor, z_cf: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of paired rows over the expected squared distance of two rows of ``z``
    (twice its spread): 0 when the pairs coincide, about 1 when they are as far as unrelated images."""
    d = (z - z_cf).flatten(1).float().pow(2).sum(1).mean()
    flat = z.flatten(1).float()
    spread = (flat - flat.mean(0)).pow(2).sum(1).mean()
    return d / (2 * spread).clamp_min(1e-12)


@register_defence("invariance")
class Invariance(Defence):
    description = (
        "lambda * distance between what is sent for an image and for the same image with the attribute "
        "changed (counterfactual pairs)"
    )
    needs_attribute = True
    has_penalty = True
    options = ("attribute", "counterfactual")

    def __init__(
        self,
        strength: float = 0.0,
        *,
        attribute: str = COLOUR,
        counterfactual: str | Counterfactual | None = None,
    ) -> None:
        super().__init__(strength)
        self.attribute = attribute
        if counterfactual is None or counterfactual == RECOLOUR:
            if attribute != COLOUR:
                raise ObfauditError(
                    f"the invariance defence needs --counterfactual MODULE:CALLABLE for {attribute!r}: a "
                    "function (images, target attribute) -> the same images with that attribute (only "
                    "Colored-MNIST's colour has a built-in one, recolouring)"
                )
            self.spec, self.make_counterfactual = RECOLOUR, recolour
        elif isinstance(counterfactual, str):
            from obfaudit.transforms.sources import load_callable

            load_callable(counterfactual, option="--counterfactual")  # a bad spec fails here, in one line
            self.spec, self.make_counterfactual = counterfactual, None
        else:
            self.spec = getattr(counterfactual, "__qualname__", repr(counterfactual))
            self.make_counterfactual = counterfactual
        self.last_distance: float | None = None

    def settings(self) -> dict:
        return {"attribute": self.attribute, "counterfactual": self.spec}

    def setup(self, ctx: TrainingContext) -> None:
        if self.make_counterfactual is None:
            from obfaudit.transforms.sources import load_callable

            self.make_counterfactual = load_callable(self.spec, option="--counterfactual")[1]
        self.obfuscator, self.classes = ctx.obfuscator, ctx.classes
        self.generator = torch.Generator().manual_seed(ctx.seed + 7727)
        self.total = self.batches = 0.0
        self.ramp = RAMP_EPOCHS * max(1, ctx.steps_per_epoch)

    def counterfactual(self, x: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
        """``x`` with the attribute changed to another value, drawn uniformly among the others."""
        shift = torch.randint(1, max(2, self.classes), attribute.shape, generator=self.generator)
        target = (attribute + shift.to(attribute.device)) % max(2, self.classes)
        with torch.no_grad():
            try:
                out = self.make_counterfactual(x.float(), target)
            except Exception as e:  # noqa: BLE001 - the user's function: anything can fail
                raise ObfauditError(f"--counterfactual {self.spec} failed: {type(e).__name__}: {e}") from e
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ObfauditError(
                f"--counterfactual {self.spec} must return images of the input's shape {tuple(x.shape)}, "
                f"got {got}"
            )
        return out.to(x.dtype).detach()

    def penalty(self, x: torch.Tensor, z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor | None:
        z_cf = self.obfuscator(self.counterfactual(x, attribute))
        with torch.autocast(device_type=z.device.type, enabled=False):
            mse = (z.float() - z_cf.float()).pow(2).mean()
        self.total += float(mse.detach())
        self.batches += 1
        return self.strength * min(1.0, self.batches / self.ramp) * mse

    def summary(self) -> dict:
        return {"mean_train_mse": self.total / self.batches if self.batches else None}
