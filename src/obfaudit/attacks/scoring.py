"""Scorers, one per output kind; the only place that sees the test split's labels.

A scorer compares an attack's output on the traffic with the truth: reconstructions
with the original images (and what an independent judge reads from them), attribute
predictions with the attribute labels, embeddings with both label sets. It returns the
metrics, the verdict they give, and small arrays kept for figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from obfaudit.attacks.base import Output
from obfaudit.attacks.embedding import leakage_scores
from obfaudit.attacks.metrics import (
    attribute_summary,
    chance_level,
    compromise_threshold,
    feature_accuracy,
    image_quality,
    read_colour,
    verdict,
)
from obfaudit.data import ImageSet
from obfaudit.train import accuracy, predict

#: The attribute a palette reading (no training) can read from reconstructed RGB images.
PALETTE_ATTRIBUTE = "colour"


@dataclass
class Score:
    """What a scorer returns for one attack."""

    metrics: dict
    verdict: str | None = None
    artifacts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Scorer:
    """Scores attack outputs against the test split; holds the only copy of its labels.

    Args:
        test: the test split whose transformed images are the traffic.
        attribute: the sensitive attribute's label name (e.g. colour).
        task: the task label's name (e.g. digit).
        judge: a clean classifier of the task (the InfNet), to read reconstructions.
        device: where the judge runs.
        samples: outputs kept for figures.
        seed: seeds the cross-validation folds of the embedding scores.
    """

    test: ImageSet
    attribute: str
    task: str = "digit"
    judge: nn.Module | None = None
    device: str = "cpu"
    samples: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.judge is not None:
            self.judge.to(self.device).eval()

    @property
    def has_attribute(self) -> bool:
        return self.attribute in self.test.labels

    @property
    def classes(self) -> int:
        return len(self.test.classes[self.attribute])

    def line(self) -> dict:
        """The attribute's chance level and compromise threshold."""
        k = self.classes
        return {"chance": chance_level(k), "threshold": compromise_threshold(k)}

    def score(self, output: Output, result: torch.Tensor, traffic: torch.Tensor) -> Score:
        return SCORERS[output](self, result, traffic)


def score_image(s: Scorer, recon: torch.Tensor, traffic: torch.Tensor) -> Score:
    """MSE, PSNR and SSIM to the originals; the judge's task accuracy on the reconstructions;
    for colour, the palette colour read from them (an attribute F_a with a verdict)."""
    test = s.test
    metrics = image_quality(recon, test.x)
    if s.judge is not None and s.task in test.labels:
        metrics[f"{s.task}_acc_on_reconstructions"] = accuracy(
            predict(s.judge, recon, device=s.device).cpu(), test.labels[s.task]
        )
    out = Score(metrics, artifacts={"output": recon[: s.samples]})
    if s.has_attribute and s.attribute == PALETTE_ATTRIBUTE and recon.shape[1] == 3:
        fa = feature_accuracy(read_colour(recon), test.labels[s.attribute])
        metrics.update(attribute_recovered=fa, feature_accuracy=fa, **s.line())
        out.verdict = verdict(fa, s.classes)
    return out


def score_attribute(s: Scorer, pred: torch.Tensor, traffic: torch.Tensor) -> Score:
    """Feature accuracy F_a of the predicted attribute, with chance, threshold and verdict."""
    summary = attribute_summary(pred, s.test.labels[s.attribute], s.classes)
    return Score(summary, verdict(summary["feature_accuracy"], s.classes))


def score_embedding(s: Scorer, emb: torch.Tensor, traffic: torch.Tensor) -> Score:
    """k-NN attribute accuracy in the embedding (the verdict) and the leakage scores."""
    n = len(emb)
    task = s.test.labels[s.task][:n].numpy()
    attr = s.test.labels[s.attribute][:n].numpy()
    scores = leakage_scores(traffic[:n].numpy(), emb.numpy(), task, attr, seed=s.seed)
    fa = scores["embedding"]["knn_attribute_acc"]
    metrics = {"feature_accuracy": fa, **s.line(), **scores}
    arts = {"output": emb, "labels/task": torch.from_numpy(task), "labels/attribute": torch.from_numpy(attr)}
    return Score(metrics, verdict(fa, s.classes), arts)


SCORERS: dict[Output, Callable[[Scorer, torch.Tensor, torch.Tensor], Score]] = {
    Output.IMAGE: score_image,
    Output.ATTRIBUTE: score_attribute,
    Output.EMBEDDING: score_embedding,
}
