"""Adversarial training: the obfuscator pays for what attribute classifiers read from T(x).

``adversarial`` (DeepObfuscator style): alternating updates, each batch: (1) the adversary,
an MLP on the sent tensor, takes one Adam step to predict the attribute from z detached
(with the server's attribute labels); (2) the obfuscator's loss gets lambda times the
adversary's cross-entropy against the uniform distribution on its classes (its confusion),
which is smallest when the adversary can do no better than guessing. Pushing towards uniform
predictions is the bounded form of maximising the adversary's loss, which diverges. The
InfNet stays frozen throughout.

One co-trained adversary is easy to fool: the obfuscator learns to mislead that network, and
a classifier trained afresh on what it sends still reads the attribute (the ``defences``
preset measured a retrained ColorNet at 99% where the co-trained one was confused).
``adversarial-ensemble`` makes that harder: several adversaries of different kinds (an MLP, a
convolutional classifier where z is an image, and an MLP re-initialised every two epochs, so
the obfuscator keeps facing a fresh attacker rather than overfitting one), each taking one
step per batch, and the obfuscator paying for the strongest of them on that batch (the lowest
cross-entropy on the true attribute).

Both record each adversary's accuracy on the training batches of the last epoch
(:meth:`summary`); the sidecar keeps it beside the accuracy a fresh attacker reaches on the
finished obfuscator (see :func:`obfaudit.experiments.steps.fit_obfnet`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from obfaudit.defences.base import Defence, TrainingContext, register_defence

HIDDEN = 256
LR = 1e-3
RESET_EVERY = 2
"""Epochs between re-initialisations of the ensemble's fresh adversary."""


def _mlp(z_shape: tuple[int, ...], classes: int) -> nn.Module:
    width = 1
    for d in z_shape:
        width *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(width, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes))


def _conv(z_shape: tuple[int, ...], classes: int) -> nn.Module:
    c = z_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, 128),
        nn.ReLU(),
        nn.Linear(128, classes),
    )


def confusion(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the predictions against the uniform distribution on the classes."""
    return (-F.log_softmax(logits.float(), dim=1).mean(dim=1)).mean()


class Adversary:
    """One attribute classifier trained beside the obfuscator, one Adam step per batch, with its
    accuracy on the batches of the current and the last finished epoch."""

    def __init__(
        self,
        name: str,
        make: Callable[[], nn.Module],
        ctx: TrainingContext,
        seed: int,
        reset_every: int | None = None,
    ) -> None:
        self.name, self.make, self.device, self.seed = name, make, ctx.device, seed
        self.reset_every, self.steps_per_epoch = reset_every, max(1, ctx.steps_per_epoch)
        self.steps = self.resets = 0
        self.correct = self.seen = 0
        self.last_epoch_acc: float | None = None
        self._build(seed)

    def _build(self, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):  # its own seed, without moving the run's RNG
            torch.manual_seed(seed)
            self.net = self.make().to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)

    def step(self, z: torch.Tensor, attribute: torch.Tensor) -> float:
        """One step on what was sent (no gradient into the obfuscator); its loss on the batch."""
        self.net.requires_grad_(True)
        logits = self.net(z.detach()).float()
        loss = F.cross_entropy(logits, attribute)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.correct += int((logits.argmax(1) == attribute).sum())
        self.seen += len(attribute)
        self.steps += 1
        if self.steps % self.steps_per_epoch == 0:
            self.last_epoch_acc = self.correct / max(1, self.seen)
            self.correct = self.seen = 0
            epoch = self.steps // self.steps_per_epoch
            if self.reset_every and epoch % self.reset_every == 0:
                self.resets += 1
                self._build(self.seed + 7919 * self.resets)
        return float(loss.detach())

    def confusion(self, z: torch.Tensor) -> torch.Tensor:
        """Its confusion on z, with the gradient flowing into the obfuscator only."""
        self.net.requires_grad_(False)
        return confusion(self.net(z))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "reset_every_epochs": self.reset_every,
            "resets": self.resets,
            "last_epoch_train_acc": self.last_epoch_acc,
        }


class _AdversarialDefence(Defence):
    needs_attribute = True
    has_penalty = True

    def adversaries(self, ctx: TrainingContext) -> list[Adversary]:
        raise NotImplementedError

    def setup(self, ctx: TrainingContext) -> None:
        self.team = self.adversaries(ctx)

    def penalty(self, x: torch.Tensor, z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor | None:
        losses = [a.step(z, attribute) for a in self.team]
        strongest = self.team[min(range(len(losses)), key=losses.__getitem__)]
        return self.strength * strongest.confusion(z)

    def summary(self) -> dict:
        accs = [a.last_epoch_acc for a in self.team if a.last_epoch_acc is not None]
        return {
            "adversaries": [a.to_dict() for a in self.team],
            "in_training_acc": max(accs) if accs else None,
        }


@register_defence("adversarial")
class AdversarialTraining(_AdversarialDefence):
    description = "lambda * confusion of an attribute classifier trained alongside on what is sent"

    def adversaries(self, ctx: TrainingContext) -> list[Adversary]:
        return [Adversary("mlp", lambda: _mlp(ctx.z_shape, ctx.classes), ctx, ctx.seed + 104729)]


@register_defence("adversarial-ensemble")
class AdversarialEnsemble(_AdversarialDefence):
    description = (
        "lambda * confusion of the strongest of several attribute classifiers trained alongside (an MLP, "
        "a CNN on image-shaped tensors, an MLP re-initialised every two epochs)"
    )

    def adversaries(self, ctx: TrainingContext) -> list[Adversary]:
        mlp = lambda: _mlp(ctx.z_shape, ctx.classes)  # noqa: E731
        team = [Adversary("mlp", mlp, ctx, ctx.seed + 104729)]
        if len(ctx.z_shape) == 3 and min(ctx.z_shape[1:]) >= 8:
            team.append(Adversary("cnn", lambda: _conv(ctx.z_shape, ctx.classes), ctx, ctx.seed + 130363))
        team.append(Adversary("mlp-fresh", mlp, ctx, ctx.seed + 155921, reset_every=RESET_EVERY))
        return team
