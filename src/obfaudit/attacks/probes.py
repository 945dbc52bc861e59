"""Probes: how linearly, and how locally, the attribute sits in what is sent.

A linear probe (multinomial logistic regression on standardised features) and a k-NN
classifier (k = 10) learn the attribute from transformed images, for the server (its
training split) and for the adversary (its proxies, pooled). scikit-learn, seconds on a
CPU. Inputs wider than 256 features are first projected by PCA fitted on the training
features only: scikit-learn's (randomised) on features that fit a copy, an exact one read in
chunks (:class:`StandardPCA`) on larger ones, such as the adversary's 60,000 proxies.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from threadpoolctl import threadpool_limits

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, expect
from obfaudit.attacks.registry import register_attack

PCA_DIMS = 256
K = 10
#: Rows per pass over the features (the passes' temporaries are copies of a chunk).
CHUNK = 4096
#: Features larger than this are standardised and projected in chunks (:class:`StandardPCA`) instead
#: of copied...
COPY_LIMIT = 256 * 2**20
#: ...when each is at most this wide: StandardPCA holds d x d float64 matrices (400 MB at this width)
#: and decomposes one; wider features (a split model's early cut) keep the copy and a randomised PCA.
CHUNKED_WIDTH = 4096


class StandardPCA(TransformerMixin, BaseEstimator):
    """Standardise each feature, then project on the top ``dims`` principal directions of the
    standardised training features (the eigenvectors of their correlation matrix: exact, where
    scikit-learn's PCA of this size is randomised), reading the features in chunks and never copying
    them whole; ``dims`` None: standardise only. A feature with no variance keeps a scale of 1, as in
    scikit-learn's StandardScaler."""

    def __init__(self, dims: int | None = None) -> None:
        self.dims = dims

    def fit(self, x: np.ndarray, y=None) -> StandardPCA:
        n, d = x.shape
        total = np.zeros(d)
        for start in range(0, n, CHUNK):
            total += x[start : start + CHUNK].sum(axis=0, dtype=np.float64)
        self.mean_ = total / n
        mean32 = self.mean_.astype(np.float32)
        squares, cov = np.zeros(d), np.zeros((d, d)) if self.dims else None
        for start in range(0, n, CHUNK):
            c = x[start : start + CHUNK] - mean32
            squares += np.square(c, dtype=np.float64).sum(axis=0)
            if cov is not None:
                cov += c.T @ c
        scale = np.sqrt(squares / n)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        if cov is None:
            self.weights_ = None
            return self
        corr = cov / n / np.outer(self.scale_, self.scale_)
        _, vectors = scipy.linalg.eigh(corr, subset_by_index=(d - self.dims, d - 1))
        directions = vectors[:, ::-1]  # the largest variance first, as PCA orders them
        self.weights_ = (directions / self.scale_[:, None]).astype(np.float32)
        self.offset_ = (self.mean_ @ (directions / self.scale_[:, None])).astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        width = self.weights_.shape[1] if self.weights_ is not None else x.shape[1]
        out = np.empty((len(x), width), dtype=np.float32)
        for start in range(0, len(x), CHUNK):
            c = x[start : start + CHUNK]
            if self.weights_ is None:
                out[start : start + len(c)] = (c - self.mean_) / self.scale_
            else:
                out[start : start + len(c)] = c @ self.weights_ - self.offset_
        return out


class Probe(Attack):
    """A scikit-learn classifier of the attribute on flattened transformed images."""

    output = Output.ATTRIBUTE
    screening = True
    cost = 0.5
    kind = "linear"

    def _fit(self, z: torch.Tensor, y: torch.Tensor, trained_on) -> dict:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import Pipeline

        x = z.reshape(len(z), -1).numpy()
        dims = min(PCA_DIMS, len(x))  # PCA keeps at most as many directions as it has samples
        x, first = self._features(x, dims)
        if self.kind == "linear":
            classifier = LogisticRegression(max_iter=300, C=1.0)
        else:
            classifier = KNeighborsClassifier(n_neighbors=min(K, len(x)))

        # one BLAS / OpenMP thread: the solver's many small products otherwise contend with the
        # threads PyTorch leaves spinning (4.7 s for this fit on 2 cores instead of 1.4 s, and
        # 23 s instead of seconds on a 16-core GPU machine, where it was most of an audit)
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
            warnings.simplefilter("always", ConvergenceWarning)  # recorded in the fit, not printed
            self.model = Pipeline([("features", first), ("classifier", classifier.fit(x, y.numpy()))])
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        fit = {"trained_on": trained_on, "n_train": len(x), "features": z[0].numel(), "probe": self.kind}
        if self.kind == "linear":
            fit["converged"] = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return fit

    def _features(self, x: np.ndarray, dims: int):
        """(the standardised features of ``x``, projected on ``dims`` principal directions where wider;
        the fitted transformer that does it)."""
        from sklearn.decomposition import PCA
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant features (the null control)
            if x.nbytes > COPY_LIMIT and x.dtype == np.float32 and x.shape[1] <= CHUNKED_WIDTH:
                # the adversary's 60,000 proxies through the identity are 564 MB a copy: standardised and
                # projected in chunks, never copied whole (a whole copy was the peak of the README's audit)
                first = StandardPCA(dims if x.shape[1] > dims else None).fit(x)
                x = first.transform(x)
            else:
                # a copy of the features, scaled and projected in place (the scaler's one-pass variance
                # makes a float64 copy of what it is given: in chunks, that is a chunk)
                x = x.astype(np.float32, copy=True)
                first = StandardScaler(copy=False)
                for start in range(0, len(x), CHUNK):
                    first.partial_fit(x[start : start + CHUNK])
                x = first.transform(x, copy=False)
                if x.shape[1] > dims:
                    pca = PCA(dims, random_state=self.config.seed, copy=False)
                    with threadpool_limits(1):
                        x = pca.fit_transform(x)
                    first = Pipeline([("standardscaler", first), ("pca", pca)])
        return x, first

    def infer(self, traffic: torch.Tensor) -> torch.Tensor:
        x = traffic.reshape(len(traffic), -1).numpy().astype(np.float32)
        with threadpool_limits(1):
            return torch.from_numpy(self.model.predict(x).astype(np.int64))


class ServerProbe(Probe):
    party = Party.SERVER
    needs = ("train", "attribute")

    def fit(self, knowledge: ServerKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        y = knowledge.train.labels[self.config.attribute]
        return self._fit(knowledge.observed_train(), y, knowledge.train.name)


class AdversaryProbe(Probe):
    party = Party.ADVERSARY
    needs = ("proxy", "attribute")
    slow = True  # 60,000 proxy images: 10-35 s per ObfNet here

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        names = [n for n in sorted(knowledge.proxies) if self.config.attribute in knowledge.proxy(n).labels]
        every = names == sorted(knowledge.proxies)
        z = knowledge.observed_proxies() if every else torch.cat([knowledge.observed_proxy(n) for n in names])
        y = torch.cat([knowledge.proxy(n).labels[self.config.attribute] for n in names])
        return self._fit(z, y, [knowledge.proxy(n).name for n in names])


@register_attack("linprobe")
class LinearProbe(ServerProbe):
    kind = "linear"
    description = "server: logistic regression on the transformed training split"


@register_attack("knnprobe")
class KnnProbe(ServerProbe):
    kind = "knn"
    description = "server: 10-nearest-neighbour classifier on the transformed training split"


@register_attack("linprobe-proxy")
class ProxyLinearProbe(AdversaryProbe):
    kind = "linear"
    description = "adversary: logistic regression on its transformed proxy images"


@register_attack("knnprobe-proxy")
class ProxyKnnProbe(AdversaryProbe):
    kind = "knn"
    description = "adversary: 10-nearest-neighbour classifier on its transformed proxy images"
