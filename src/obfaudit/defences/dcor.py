"""Distance correlation (NoPeek, Vepakomma et al. 2020): penalise dCor(x, T(x)).

Distance correlation is zero only when x and z are independent; NoPeek adds lambda times
the sample distance correlation of each batch's raw inputs and sent tensors to the loss,
so the obfuscator keeps what the task needs and drops what ties z to the image.
"""

from __future__ import annotations

import torch

from obfaudit.defences.base import Defence, register_defence


def _centred_distances(v: torch.Tensor) -> torch.Tensor:
    sq = v.pow(2).sum(1, keepdim=True)
    d = (sq + sq.T - 2 * v @ v.T).clamp_min(1e-12).sqrt()  # no NaN gradient at zero distance
    return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()


def distance_correlation(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Sample distance correlation (Szekely et al. 2007) of two batches, rows paired, in [0, 1]."""
    a = _centred_distances(x.flatten(1).float())
    b = _centred_distances(z.flatten(1).float())
    dcov_xy = (a * b).mean()
    dvar = ((a * a).mean() * (b * b).mean()).clamp_min(1e-24)
    # clamped before the root: its gradient at 0 is infinite (a collapsed z gave NaN losses)
    return (dcov_xy / dvar.sqrt()).clamp_min(1e-12).sqrt()


@register_defence("dcor")
class DistanceCorrelation(Defence):
    description = "NoPeek: lambda * distance correlation of the images and what is sent, per batch"
    has_penalty = True

    def penalty(self, x: torch.Tensor, z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor | None:
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.strength * distance_correlation(x, z)
