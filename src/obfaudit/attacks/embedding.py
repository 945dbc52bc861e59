"""Embedding analysis (trusted-third-party case): structure in the transformed data alone.

The third party sees only transformed tensors. A 2-D t-SNE (perplexity 15, as the study)
shows whether they form class clusters (digits) with attribute sub-clusters (colours); the
scorer then turns the picture into numbers with the true labels: k-NN accuracy and
silhouette of the attribute, in the raw transformed space and in the embedding, overall
and within each class.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import ThirdPartyKnowledge, expect
from obfaudit.attacks.registry import register_attack

TSNE_BACKENDS = ("opentsne", "sklearn")
PCA_DIMS = 50


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
    embedding's k-NN digit accuracy is about the same (0.820 vs 0.824 at 10,000 points) in
    8.4 s, PCA included, against 43.5 s for openTSNE's defaults (measured 2026-11-28 on the
    idle 2-core machine; 14 s and 86 s in an earlier, busier measurement) and 56 s for
    scikit-learn. ``sklearn`` is scikit-learn's
    Barnes-Hut t-SNE with its defaults. Both start from PCA, both are seeded.
    """
    x = np.ascontiguousarray(z.reshape(len(z), -1), dtype=np.float32)
    if len(x) < 4 or not np.any(x.max(axis=0) > x.min(axis=0)):
        # All points identical (e.g. the null control): nothing to embed. openTSNE would
        # divide by a zero spread and crash, so every point goes to the origin.
        return np.zeros((len(x), 2), dtype=np.float32)
    if x.shape[1] == 1:
        # one number per image: a second, constant column changes no distance, and gives the PCA
        # that starts the embedding its two components
        x = np.hstack([x, np.zeros_like(x)])
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


def knn_correct(
    x: np.ndarray, y: np.ndarray, *, k: int = 10, seed: int = 0, folds: int = 5
) -> np.ndarray | None:
    """Per point: whether its cross-validated k-NN prediction (same folds as
    :func:`knn_accuracy`) is right; None when there are too few points per class."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(y)
    folds = min(folds, int(counts[counts > 0].min()))
    if folds < 2 or len(np.unique(y)) < 2:
        return None
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(y) - len(y) // folds - 1))
    return cross_val_predict(clf, x, y, cv=cv) == y


def silhouette(x: np.ndarray, y: np.ndarray, *, seed: int = 0, max_points: int = 4000) -> float:
    """Silhouette of the grouping ``y`` in ``x`` (Euclidean), on a seeded sample if large."""
    from sklearn.metrics import silhouette_score

    if not 2 <= len(np.unique(y)) < len(y):  # undefined: one group, or every point its own
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
    raw: np.ndarray, emb: np.ndarray, task: np.ndarray, attribute: np.ndarray, *, seed: int = 0
) -> dict:
    """k-NN accuracy and silhouette of the attribute, raw and embedded, overall and within
    each task class (e.g. colour within each digit); and the same for the task class."""
    raw = raw.reshape(len(raw), -1).astype(np.float32)
    out = {}
    for space, x in (("raw", raw), ("embedding", emb)):
        out[space] = {
            "knn_attribute_acc": knn_accuracy(x, attribute, seed=seed),
            "knn_attribute_acc_within_class": _within(knn_accuracy, x, attribute, task, seed=seed),
            "silhouette_attribute": silhouette(x, attribute, seed=seed),
            "silhouette_attribute_within_class": _within(silhouette, x, attribute, task, seed=seed),
            "knn_class_acc": knn_accuracy(x, task, seed=seed),
            "silhouette_class": silhouette(x, task, seed=seed),
        }
    return out


@register_attack("tsne")
class TSNE(Attack):
    """t-SNE of the transformed traffic, fitted by a party that sees nothing else.

    It embeds the first ``tsne_points`` transformed test images; the scorer then measures,
    with the true labels, how well neighbours share the attribute (overall, within each
    class) in the raw transformed space and in the embedding.
    """

    party = Party.THIRD_PARTY
    needs = ("traffic", "attribute")
    output = Output.EMBEDDING
    screening = True
    cost = 0.5
    description = "third party: 2-D t-SNE of the traffic alone (perplexity 15), scored by k-NN"

    embedding: np.ndarray | None = None
    _traffic: torch.Tensor | None = None

    def fit(self, knowledge: ThirdPartyKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        c = self.config
        t0 = time.perf_counter()
        self._traffic = knowledge.traffic[: c.tsne_points]
        self.embedding = tsne_2d(
            self._traffic.numpy(), perplexity=c.perplexity, seed=c.seed, backend=c.tsne_backend
        )
        return {
            "points": len(self._traffic),
            "perplexity": c.perplexity,
            "backend": c.tsne_backend,
            "seconds": time.perf_counter() - t0,
        }

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        sub = traffic[: self.config.tsne_points]
        if self.embedding is None or self._traffic is None or not torch.equal(sub, self._traffic):
            raise ValueError("t-SNE embeds the traffic it was fitted on: call fit() with it first")
        return torch.from_numpy(self.embedding)
