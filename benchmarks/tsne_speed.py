"""t-SNE speed (perplexity 15) of transformed Colored-MNIST-like data, by backend.

Embeds 1,000 and 10,000 points of 2352 dimensions after PCA to 50 dimensions with:
obfaudit's tuned openTSNE (``tsne_2d``), openTSNE with its defaults (FFT, 750 iterations)
and scikit-learn with its defaults; reports seconds and the k-NN digit accuracy of each
embedding, to check that the faster run still finds the same clusters.

    python benchmarks/tsne_speed.py [--sizes 1000 10000] [--out benchmarks/results/tsne_speed.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from obfaudit.attacks.embedding import knn_accuracy, tsne_2d
from obfaudit.data import load_colored_mnist


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n Colored-MNIST images (tiled from the 5k subset with small noise) through a fixed
    random ReLU projection: 2352-dimensional, structured like an ObfNet's output."""
    ds = load_colored_mnist("train")
    reps = -(-n // len(ds))
    x = ds.x.repeat(reps, 1, 1, 1)[:n].reshape(n, -1)
    g = torch.Generator().manual_seed(0)
    x = x + 0.05 * torch.rand(x.shape, generator=g)
    w = torch.randn(2352, 256, generator=g) / 48
    w2 = torch.randn(256, 2352, generator=g) / 16
    z = torch.relu(torch.relu(x @ w) @ w2)
    return z.numpy(), ds.labels["digit"].repeat(reps)[:n].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--backends", nargs="+", default=["opentsne", "opentsne-defaults", "sklearn"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/tsne_speed.json"))
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        z, digit = data(n)
        for backend in args.backends:
            t0 = time.perf_counter()
            if backend == "opentsne-defaults":
                from openTSNE import TSNE
                from sklearn.decomposition import PCA

                x = PCA(50, random_state=0).fit_transform(z).astype(np.float32)
                emb = np.asarray(TSNE(perplexity=15, random_state=0, n_jobs=2).fit(x))
            else:
                emb = tsne_2d(z, perplexity=15, seed=0, backend=backend)
            seconds = time.perf_counter() - t0
            acc = knn_accuracy(emb, digit)
            rows.append(
                {
                    "points": n,
                    "backend": backend,
                    "seconds": round(seconds, 2),
                    "knn_digit_acc": acc,
                }
            )
            print(
                f"{n:6d} points  {backend:9s} {seconds:6.1f} s   k-NN digit accuracy {acc:.3f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
