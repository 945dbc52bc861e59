"""Embedding analysis (trusted-third-party case): structure in the transformed data alone.

The third party sees only transformed tensors. A 2-D t-SNE (perplexity 15, as the study)
shows whether they form digit clusters with colour sub-clusters; the auditor then turns
the picture into numbers with the true labels: k-NN colour accuracy and silhouette by
colour, in the raw transformed space and in the embedding, overall and within each digit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from obfaudit.attacks.base import Attack, Observer, Party
from obfaudit.attacks.metrics import chance_level, compromise_threshold, verdict

TSNE_BACKENDS = ("opentsne", "sklearn")
PCA_DIMS = 50


@dataclass(frozen=True)
class ThirdPartyKnowledge:
    """Only transformed tensors: no images, no labels, no transform."""

    traffic: torch.Tensor
    party = Party.THIRD_PARTY


def tsne_2d(
    z: np.ndarray,
    *,
    perplexity: float = 15.0,
    seed: int = 0,
    backend: str = "opentsne",
    n_jobs: int = 2,
) -> np.ndarray:
    """2-D t-SNE of rows of ``z`` (flattened), after PCA to 50 dimensions when wider.

    ``opentsne`` (the default) is tuned by measurement on a 2-core CPU (benchmarks/
    tsne_speed.py): Barnes-Hut gradients below 5,000 points; above, FFT gradients on a
    coarser grid (``ints_in_interval=2``), whose cost grows with the embedding's spread.
    Both run 250 early-exaggeration and 250 normal iterations instead of 250 + 500: the
    embedding's k-NN digit accuracy is about the same (0.82 vs 0.83 at 10,000 points) in
    14 s, against 86 s for openTSNE's defaults and 56 s for scikit-learn. ``sklearn`` is scikit-learn's
    Barnes-Hut t-SNE with its defaults. Both start from PCA, both are seeded.
    """
    x = np.ascontiguousarray(z.reshape(len(z), -1), dtype=np.float32)
    if len(x) < 4 or not np.any(x.max(axis=0) > x.min(axis=0)):
        # All points identical (e.g. the null control): nothing to embed. openTSNE would
        # divide by a zero spread and crash, so every point goes to the origin.
        return np.zeros((len(x), 2), dtype=np.float32)
    if x.shape[1] > PCA_DIMS and len(x) > PCA_DIMS:
        from sklearn.decomposition import PCA

        x = PCA(PCA_DIMS, random_state=seed).fit_transform(x).astype(np.float32)
    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3.0))
    if backend == "opentsne":
        from openTSNE import TSNE

        method = (
            {"negative_gradient_method": "bh"}
            if len(x) < 5000
            else {"negative_gradient_method": "fft", "ints_in_interval": 2}
        )
        emb = TSNE(
            n_components=2,
            perplexity=perplexity,
            initialization="pca",
            random_state=seed,
            n_iter=250,
            neighbors="auto",
            n_jobs=n_jobs,
            verbose=False,
            **method,
        ).fit(x)
        return np.asarray(emb, dtype=np.float32)
    if backend == "sklearn":
        from sklearn.manifold import TSNE

        return (
            TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=n_jobs)
            .fit_transform(x)
            .astype(np.float32)
        )
    raise ValueError(f"unknown t-SNE backend {backend!r}; choose from {TSNE_BACKENDS}")


def knn_accuracy(x: np.ndarray, y: np.ndarray, *, k: int = 10, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated k-NN accuracy of labels ``y`` from points ``x``."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(y)
    folds = min(folds, int(counts[counts > 0].min()))
    if folds < 2 or len(np.unique(y)) < 2:
        return float("nan")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(y) - len(y) // folds - 1))
    return float(cross_val_score(clf, x, y, cv=cv).mean())


def silhouette(x: np.ndarray, y: np.ndarray, *, seed: int = 0, max_points: int = 4000) -> float:
    """Silhouette of the grouping ``y`` in ``x`` (Euclidean), on a seeded sample if large."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(y)) < 2:
        return float("nan")
    size = min(len(x), max_points)
    return float(silhouette_score(x, y, sample_size=size if size < len(x) else None, random_state=seed))


def _within(fn, x: np.ndarray, y: np.ndarray, groups: np.ndarray, **kw) -> float:
    """``fn`` computed inside each group, averaged with weights by group size."""
    scores, weights = [], []
    for g in np.unique(groups):
        m = groups == g
        s = fn(x[m], y[m], **kw)
        if np.isfinite(s):
            scores.append(s)
            weights.append(m.sum())
    return float(np.average(scores, weights=weights)) if scores else float("nan")


def leakage_scores(
    raw: np.ndarray, emb: np.ndarray, digit: np.ndarray, colour: np.ndarray, *, seed: int = 0
) -> dict:
    """k-NN colour accuracy and colour silhouette, raw and embedded, overall and per digit."""
    raw = raw.reshape(len(raw), -1).astype(np.float32)
    out = {}
    for space, x in (("raw", raw), ("embedding", emb)):
        out[space] = {
            "knn_colour_acc": knn_accuracy(x, colour, seed=seed),
            "knn_colour_acc_within_digit": _within(knn_accuracy, x, colour, digit, seed=seed),
            "silhouette_colour": silhouette(x, colour, seed=seed),
            "silhouette_colour_within_digit": _within(silhouette, x, colour, digit, seed=seed),
            "knn_digit_acc": knn_accuracy(x, digit, seed=seed),
            "silhouette_digit": silhouette(x, digit, seed=seed),
        }
    return out


class EmbeddingAnalysis(Attack):
    """t-SNE of the transformed traffic, fitted by a party that sees nothing else."""

    name = "tsne"
    party = Party.THIRD_PARTY

    def __init__(self, *, perplexity: float = 15.0, seed: int = 0, backend: str = "opentsne") -> None:
        self.perplexity = perplexity
        self.seed = seed
        self.backend = backend
        self.embedding: np.ndarray | None = None
        self._traffic: torch.Tensor | None = None

    def fit(self, observe: Observer | None, knowledge: ThirdPartyKnowledge) -> dict:
        if not isinstance(knowledge, ThirdPartyKnowledge):
            raise TypeError("the embedding analysis takes ThirdPartyKnowledge (transformed tensors only)")
        t0 = time.perf_counter()
        self._traffic = knowledge.traffic
        self.embedding = tsne_2d(
            knowledge.traffic.numpy(),
            perplexity=self.perplexity,
            seed=self.seed,
            backend=self.backend,
        )
        return {
            "points": len(knowledge.traffic),
            "perplexity": self.perplexity,
            "backend": self.backend,
            "seconds": time.perf_counter() - t0,
        }

    def infer(self, z: torch.Tensor) -> torch.Tensor:
        if self.embedding is None or self._traffic is None or not torch.equal(z, self._traffic):
            raise ValueError("t-SNE embeds the traffic it was fitted on: call fit() with it first")
        return torch.from_numpy(self.embedding)


def embedding_summary(scores: dict, k_colour: int) -> dict:
    """Verdict of the embedding analysis: colour readable by k-NN in the 2-D embedding."""
    acc = scores["embedding"]["knn_colour_acc"]
    return {
        "feature_accuracy": acc,
        "chance": chance_level(k_colour),
        "threshold": compromise_threshold(k_colour),
        "verdict": verdict(acc, k_colour),
    }
