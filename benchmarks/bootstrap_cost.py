"""What the 95% bootstrap intervals cost in an audit: their seconds against the audit's.

Audits the identity transform on the embedded Colored-MNIST data (4,000 train / 1,000
test images) with the study's attacks, timing every Bootstrap call separately.

    python benchmarks/bootstrap_cost.py [--epochs 5] [--proxy-n 30000]
"""

from __future__ import annotations

import argparse
import json
import time

from obfaudit._io import keep_freed_memory
from obfaudit.attacks import AuditConfig, audit_transform, uncertainty
from obfaudit.data import load_colored_mnist, load_proxy
from obfaudit.train import TrainConfig
from obfaudit.transforms import IdentityTransform


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--proxy-n", type=int, default=30_000)
    args = ap.parse_args()
    keep_freed_memory()
    spent = {"seconds": 0.0, "calls": 0}
    original_init, original_interval = uncertainty.Bootstrap.__init__, uncertainty.Bootstrap.interval

    def timed_init(self, *a, **kw):
        t0 = time.perf_counter()
        original_init(self, *a, **kw)
        spent["seconds"] += time.perf_counter() - t0

    def timed_interval(self, *a, **kw):
        t0 = time.perf_counter()
        out = original_interval(self, *a, **kw)
        spent["seconds"] += time.perf_counter() - t0
        spent["calls"] += 1
        return out

    uncertainty.Bootstrap.__init__, uncertainty.Bootstrap.interval = timed_init, timed_interval
    train, test = load_colored_mnist("train"), load_colored_mnist("test")
    proxies = {p: load_proxy(p, seed=1 + i, n=args.proxy_n) for i, p in enumerate(("noisy", "path"))}
    config = AuditConfig(
        train=TrainConfig(epochs=args.epochs, patience=None, val_fraction=0.0),
        proxy_train=TrainConfig(epochs=max(1, args.epochs // 3), patience=None, val_fraction=0.0),
    )
    t0 = time.perf_counter()
    audit_transform("identity", IdentityTransform(), train=train, test=test, proxies=proxies, config=config)
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "audit_seconds": round(wall, 2),
                "bootstrap_seconds": round(spent["seconds"], 3),
                "bootstrap_intervals": spent["calls"],
                "share_of_audit": round(spent["seconds"] / wall, 4),
                "test_images": len(test),
                "resamples": uncertainty.RESAMPLES,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
