"""Adversarial training (DeepObfuscator style): fool an attribute classifier trained on T(x).

Alternating updates, each batch: (1) the adversary, an MLP on the sent tensor, takes one
Adam step to predict the attribute from z detached (with the server's attribute labels);
(2) the obfuscator's loss gets lambda times the adversary's cross-entropy against the
uniform distribution on its classes (its confusion), which is smallest when the adversary
can do no better than guessing. Pushing towards uniform predictions is the bounded form of
maximising the adversary's loss, which diverges. The InfNet stays frozen throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from obfaudit.defences.base import Defence, register_defence

HIDDEN = 256
LR = 1e-3


@register_defence("adversarial")
class AdversarialTraining(Defence):
    description = "lambda * confusion of an attribute classifier trained alongside on what is sent"
    needs_attribute = True
    has_penalty = True

    def setup(self, z_shape: tuple[int, ...], classes: int, device: torch.device, seed: int) -> None:
        width = 1
        for d in z_shape:
            width *= d
        with torch.random.fork_rng(devices=[]):  # its own seed, without moving the run's RNG
            torch.manual_seed(seed + 104729)
            self.adversary = nn.Sequential(
                nn.Flatten(), nn.Linear(width, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes)
            ).to(device)
        self.opt = torch.optim.Adam(self.adversary.parameters(), lr=LR)

    def penalty(self, x: torch.Tensor, z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor | None:
        # (1) the adversary's step, on what was sent, with no gradient into the obfuscator
        self.adversary.requires_grad_(True)
        loss = F.cross_entropy(self.adversary(z.detach()).float(), attribute)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # (2) the obfuscator is scored by how confused the updated adversary is (frozen here:
        # the obfuscator's backward pass then fills no gradients of the adversary)
        self.adversary.requires_grad_(False)
        logp = F.log_softmax(self.adversary(z).float(), dim=1)
        return self.strength * (-logp.mean(dim=1)).mean()
