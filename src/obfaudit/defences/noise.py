"""Noise: Gaussian noise of scale sigma added to every tensor the obfuscator sends.

The noise is part of the model (``noise`` argument of the ObfNet architectures), so it is
drawn during training (the ObfNet learns to keep the digit readable through it) and at
inference: the saved model sends noisy tensors, and every attack sees them.
"""

from obfaudit.defences.base import Defence, register_defence


@register_defence("noise")
class NoiseDefence(Defence):
    description = "Gaussian noise of scale sigma added to what is sent, in training and at inference"
    strength_name = "sigma"
    strengths = (0.5, 1.0, 2.0)

    def model_kwargs(self) -> dict:
        return {"noise": self.strength}
