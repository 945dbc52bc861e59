"""Probes: how linearly, and how locally, the attribute sits in what is sent.

A linear probe (multinomial logistic regression on standardised features) and a k-NN
classifier (k = 10) learn the attribute from transformed images, for the server (its
training split) and for the adversary (its proxies, pooled). scikit-learn, seconds on a
CPU. Inputs wider than 256 features are first projected by PCA fitted on the training
features only.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from obfaudit.attacks.base import Attack, Output, Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, expect
from obfaudit.attacks.registry import register_attack

PCA_DIMS = 256
K = 10
#: Rows per pass of the scaler's statistics (its temporaries are float64 copies of the pass).
SCALER_CHUNK = 4096


class Probe(Attack):
    """A scikit-learn classifier of the attribute on flattened transformed images."""

    output = Output.ATTRIBUTE
    screening = True
    kind = "linear"

    def _fit(self, z: torch.Tensor, y: torch.Tensor, trained_on) -> dict:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import Pipeline, make_pipeline
        from sklearn.preprocessing import StandardScaler

        # One copy of the features, scaled and projected in place, the scaler's statistics gathered in
        # chunks: the adversary's 60,000 proxies through the identity are 564 MB a copy, and the
        # scaler's one-pass variance made a float64 copy of them all (1.1 GB), the peak of a whole
        # audit (3.5 GB for the README's example; 1.6 GB of it in this fit).
        x = z.reshape(len(z), -1).numpy().astype(np.float32, copy=True)
        scaler = StandardScaler(copy=False)
        for start in range(0, len(x), SCALER_CHUNK):
            scaler.partial_fit(x[start : start + SCALER_CHUNK])
        x = scaler.transform(x, copy=False)
        steps = []
        dims = min(PCA_DIMS, len(x))  # PCA keeps at most as many directions as it has samples
        if x.shape[1] > dims:
            steps.append(PCA(dims, random_state=self.config.seed, copy=False))
        if self.kind == "linear":
            steps.append(LogisticRegression(max_iter=300, C=1.0))
        else:
            steps.append(KNeighborsClassifier(n_neighbors=min(K, len(x))))
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        # one BLAS / OpenMP thread: the solver's many small products otherwise contend with the
        # threads PyTorch leaves spinning (4.7 s for this fit on 2 cores instead of 1.4 s, and
        # 23 s instead of seconds on a 16-core GPU machine, where it was most of an audit)
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
            warnings.simplefilter("ignore", RuntimeWarning)  # constant features (the null control) in PCA
            warnings.simplefilter("always", ConvergenceWarning)  # recorded in the fit, not printed
            rest = make_pipeline(*steps).fit(x, y.numpy())
            self.model = Pipeline([("standardscaler", scaler), *rest.steps])
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        fit = {"trained_on": trained_on, "n_train": len(x), "features": x.shape[1], "probe": self.kind}
        if self.kind == "linear":
            fit["converged"] = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return fit

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
