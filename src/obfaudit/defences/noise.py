"""Noise: Gaussian noise of scale sigma added to every tensor the obfuscator sends.

The noise is part of the model (``noise`` argument of the ObfNet architectures), so it is
drawn during training (the ObfNet learns to keep the digit readable through it) and at
inference: the saved model sends noisy tensors, and every attack sees them.
"""

from obfaudit.defences.base import Defence, register_defence
from obfaudit.errors import ObfauditError


@register_defence("noise")
class NoiseDefence(Defence):
    description = "Gaussian noise of scale sigma added to what is sent, in training and at inference"
    strength_name = "sigma"

    def __init__(self, strength: float = 0.0) -> None:
        super().__init__(strength)
        if self.strength >= 1e6:
            raise ObfauditError(f"--strength of noise (sigma) must be below 1e6, got {strength!r}")

    def model_kwargs(self) -> dict:
        return {"noise": self.strength}
