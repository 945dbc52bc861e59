"""A trained split model to audit: torchvision's ResNet-18 trained on the photos dataset at 64x64.

Split-learning attacks are published on trained networks (GLASS cuts a CelebA ResNet at layer2);
random weights keep more of the image than trained ones, or less. Train it once (deterministic for
a seed; about five minutes on two CPU cores), then sweep its cuts like any ``MODULE:CALLABLE``:

    python examples/trained_resnet.py --out models/resnet18-photos.safetensors
    RESNET18_PHOTOS=models/resnet18-photos.safetensors obfaudit audit \\
        --transform examples.trained_resnet:resnet18_photos --split layer1,layer2,layer3,layer4 \\
        --data photos --attribute brightness --out sweep-trained

The weights are saved as safetensors with a JSON sidecar (settings, hold-out accuracy, SHA-256),
and :func:`resnet18_photos` checks the file against that digest before loading it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import torchvision

from obfaudit.data.photos import SCENES, load_photos
from obfaudit.errors import ObfauditError
from obfaudit.train import accuracy, predict, train_classifier
from obfaudit.train_config import TrainConfig

DEFAULT_PATH = Path("models/resnet18-photos.safetensors")
#: Where :func:`resnet18_photos` looks for the weights (else :data:`DEFAULT_PATH`).
ENV = "RESNET18_PHOTOS"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resnet18_photos() -> torch.nn.Module:
    """The trained ResNet-18 (8 scene classes), in eval mode, from ``$RESNET18_PHOTOS`` or
    ``models/resnet18-photos.safetensors``."""
    from safetensors.torch import load_file

    path = Path(os.environ.get(ENV, DEFAULT_PATH))
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        raise ObfauditError(
            f"no trained weights at {path} (and {meta.name}); train them first: "
            f"python examples/trained_resnet.py --out {path}"
        )
    expected = json.loads(meta.read_text())["sha256"]
    if _sha256(path) != expected:
        raise ObfauditError(f"{path} does not match the SHA-256 in {meta.name}; train it again")
    model = torchvision.models.resnet18(num_classes=len(SCENES))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train(out: Path, *, epochs: int, n_train: int, size: int, seed: int, device: str) -> dict:
    """Train, evaluate on the photos' test split, save weights and sidecar; returns the sidecar."""
    from safetensors.torch import save_file

    train_set = load_photos("train", seed=seed, n=n_train, size=size)
    test_set = load_photos("test", seed=seed, size=size)
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=len(SCENES))
    config = TrainConfig(epochs=epochs, seed=seed, device=device, shift=size // 16, schedule="onecycle")
    start = time.perf_counter()
    fit = train_classifier(model, train_set.x, train_set.labels["scene"], config)
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    test_accuracy = accuracy(predict(model, test_set.x, device="cpu"), test_set.labels["scene"])
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    sidecar = {
        "model": "torchvision.models.resnet18(num_classes=8)",
        "data": f"photos, {n_train} training crops of {size}x{size}, seed {seed}",
        "task": "scene",
        "epochs_run": fit.epochs_run,
        "hold_out_accuracy": fit.val_metric,
        "test_accuracy": test_accuracy,
        "train_seconds": round(seconds, 1),
        "sha256": _sha256(out),
    }
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train ResNet-18 on the photos (a split model to audit).")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="weights file (.safetensors)")
    parser.add_argument("--epochs", type=int, default=15, help="most passes over the data (default 15)")
    parser.add_argument("--n-train", type=int, default=4000, help="training crops (default 4000)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    sidecar = train(
        args.out, epochs=args.epochs, n_train=args.n_train, size=args.size, seed=args.seed, device=args.device
    )
    print(json.dumps(sidecar, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
