"""Scorers, one per output kind; the only place that sees the test split's labels.

A scorer compares an attack's output on the traffic with the truth: reconstructions
with the original images (and what an independent judge reads from them), attribute
predictions with the attribute labels, embeddings with both label sets. It returns the
metrics, the verdict they give, and small arrays kept for figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from obfaudit.attacks.base import Output
from obfaudit.attacks.embedding import knn_correct, leakage_scores
from obfaudit.attacks.metrics import chance_level, compromise_threshold, image_quality, read_colour
from obfaudit.attacks.uncertainty import Bootstrap, interval_verdict, pack_correct
from obfaudit.data import COLOUR, COLOUR_NAMES, ImageSet
from obfaudit.train import predict

#: The attribute a palette reading (no training) can read from reconstructed RGB images.
PALETTE_ATTRIBUTE = COLOUR


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
        attribute_judge: a classifier of the attribute trained on clean training images
            (the server's knowledge, not the attacker's), which reads the attribute from
            reconstructions; without it the palette reading does, for colour.
        device: where the judge runs.
        samples: outputs kept for figures.
        seed: seeds the cross-validation folds of the embedding scores.
    """

    test: ImageSet
    attribute: str
    task: str = "digit"
    judge: nn.Module | None = None
    attribute_judge: nn.Module | None = None
    device: str = "cpu"
    samples: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for judge in (self.judge, self.attribute_judge):
            if judge is not None:
                judge.to(self.device).eval()

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

    def bootstrap(self) -> Bootstrap:
        """Resampling indices over the test set (the same for every attack of one audit)."""
        return Bootstrap(len(self.test), seed=self.seed)

    def score(self, output: Output, result: torch.Tensor, traffic: torch.Tensor) -> Score:
        return SCORERS[output](self, result, traffic)


def _accuracy(s: Scorer, name: str, correct: np.ndarray, metrics: dict, boot: Bootstrap) -> float:
    """Put ``name`` (the mean of ``correct``) and ``name_ci`` into ``metrics``."""
    value = float(np.mean(correct))
    metrics[name] = value
    metrics[f"{name}_ci"] = boot.interval(correct)
    if name == "feature_accuracy":  # kept per image, for comparing two audits of the same images
        metrics.setdefault("per_image", {}).update(feature_accuracy=pack_correct(correct), n=len(correct))
    return value


def _attribute_verdict(s: Scorer, fa: float, metrics: dict) -> str:
    metrics.update(s.line())
    return interval_verdict(fa, metrics.get("feature_accuracy_ci"), metrics["threshold"])


def score_image(s: Scorer, recon: torch.Tensor, traffic: torch.Tensor) -> Score:
    """MSE, PSNR and SSIM to the originals (with intervals); the judge's task accuracy on the
    reconstructions; for colour, the palette colour read from them (an F_a with a verdict)."""
    test = s.test
    quality = image_quality(recon, test.x, per_image=True)
    per = quality.pop("per_image")
    boot = s.bootstrap()
    metrics = dict(quality)
    for name in ("mse", "psnr_db", "ssim"):
        metrics[f"{name}_ci"] = boot.interval(per[name])
    metrics["per_image"] = {"ssim": [round(float(v), 4) for v in per["ssim"]], "n": len(per["ssim"])}
    if s.judge is not None and s.task in test.labels:
        pred = predict(s.judge, recon, device=s.device).argmax(dim=1).cpu()
        _accuracy(s, f"{s.task}_acc_on_reconstructions", (pred == test.labels[s.task]).numpy(), metrics, boot)
    out = Score(metrics, artifacts={"output": recon[: s.samples]})
    if not s.has_attribute:
        return out
    truth = test.labels[s.attribute]
    palette = None
    classes = s.test.classes[s.attribute]
    if s.attribute == PALETTE_ATTRIBUTE and recon.shape[1] == 3 and set(COLOUR_NAMES) <= set(classes):
        # palette indices -> this dataset's order of the colour names (a folder's is alphabetical)
        to_data = torch.tensor([classes.index(c) for c in COLOUR_NAMES])
        palette = (to_data[read_colour(recon)] == truth).numpy()
    if s.attribute_judge is not None:
        read = predict(s.attribute_judge, recon, device=s.device).argmax(dim=1).cpu()
        fa = _accuracy(s, "feature_accuracy", (read == truth).numpy(), metrics, boot)
        if palette is not None:
            _accuracy(s, "attribute_by_palette", palette, metrics, boot)
    elif palette is not None:
        fa = _accuracy(s, "feature_accuracy", palette, metrics, boot)
    else:
        return out
    metrics["attribute_recovered"] = fa
    out.verdict = _attribute_verdict(s, fa, metrics)
    return out


def score_attribute(s: Scorer, pred: torch.Tensor, traffic: torch.Tensor) -> Score:
    """Feature accuracy F_a of the predicted attribute, its interval, chance, line and verdict."""
    true = s.test.labels[s.attribute]
    if pred.shape != true.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(true.shape)} differ")
    metrics = {"n_test": len(true)}
    fa = _accuracy(s, "feature_accuracy", (pred == true).numpy(), metrics, s.bootstrap())
    return Score(metrics, _attribute_verdict(s, fa, metrics))


def score_embedding(s: Scorer, emb: torch.Tensor, traffic: torch.Tensor) -> Score:
    """Cross-validated k-NN attribute accuracy in the embedding (the verdict, with its
    interval over the embedded points) and the leakage scores."""
    n = len(emb)
    task = s.test.labels[s.task][:n].numpy()
    attr = s.test.labels[s.attribute][:n].numpy()
    scores = leakage_scores(traffic[:n].numpy(), emb.numpy(), task, attr, seed=s.seed)
    metrics: dict = {}
    correct = knn_correct(emb.numpy(), attr, seed=s.seed)
    if correct is None:
        metrics["feature_accuracy"] = None
        verdict_ = None
    else:
        fa = _accuracy(s, "feature_accuracy", correct, metrics, Bootstrap(n, seed=s.seed))
        scores["embedding"]["knn_attribute_acc"] = fa
        verdict_ = _attribute_verdict(s, fa, metrics)
    metrics.update(scores)
    arts = {"output": emb, "labels/task": torch.from_numpy(task), "labels/attribute": torch.from_numpy(attr)}
    return Score(metrics, verdict_, arts)


SCORERS: dict[Output, Callable[[Scorer, torch.Tensor, torch.Tensor], Score]] = {
    Output.IMAGE: score_image,
    Output.ATTRIBUTE: score_attribute,
    Output.EMBEDDING: score_embedding,
}
