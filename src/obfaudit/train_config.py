"""The settings of one training run: light to import, so commands build their options from it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PRECISIONS = ("bf16", "fp32")
SCHEDULES = ("constant", "onecycle")
#: The attack networks an audit may train (:mod:`obfaudit.models.attack_nets`).
ATTACK_NETS = ("auto", "mlp", "conv")


@dataclass
class TrainConfig:
    """Settings of one training run."""

    epochs: int = 10
    """Maximum number of passes over the training data."""
    batch_size: int = 128
    """Images per optimiser step (the study's 128)."""
    lr: float = 1e-3
    """Adam learning rate."""
    seed: int = 0
    """Seeds initial weights, the validation split and the batch order."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto."""
    precision: str = "bf16"
    """bf16: bfloat16 autocast for the forward pass; fp32: plain float32."""
    val_fraction: float = 0.1
    """Share of the training data held out for early stopping (0 disables it)."""
    patience: int | None = 3
    """Early stopping: stop after this many epochs without a better score on a 10% hold-out
    (accuracy for classifiers, else loss); 0 or None: never."""
    shift: int = 0
    """Random translation of each training input by up to this many pixels in x and y
    (zero-filled, drawn per image and epoch); 0: none, as in the study. For classifiers
    and ObfNets only: their targets are labels, which a shift does not change."""
    schedule: str = "constant"
    """Learning rate over the run: constant (the study's) or onecycle (PyTorch's OneCycleLR:
    warm up to ``lr`` over the first 30% of steps, then anneal to ~0, while Adam's beta1 moves
    the other way, 0.95 -> 0.85 -> 0.95; the default preset's InfNets and ObfNets)."""
    progress: bool = False
    """Show a progress bar on stderr."""
    desc: str = "train"
    """Label of the progress bar."""

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or not 0 < self.lr < math.inf:
            raise ValueError("epochs, batch_size and lr must be positive (and lr finite)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.shift < 0:
            raise ValueError(f"shift must be 0 or more pixels, got {self.shift}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("progress")
        d.pop("desc")
        for key, default in (("shift", 0), ("schedule", "constant")):
            if d[key] == default:  # runs recorded before the setting existed keep their keys
                d.pop(key)
        return d
