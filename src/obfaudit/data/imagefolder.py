"""Image folders in the ImageNette layout (``train/<class>/*.jpg``, ``val/<class>/*.jpg``)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from obfaudit.data.base import ImageSet
from obfaudit.data.registry import DatasetSpec, register_dataset
from obfaudit.errors import DataError

IMAGE_SIZE = 224
#: torchvision's ResNet preprocessing constants (ImageNet mean and std, RGB).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_DIRS = {"train": ("train",), "test": ("val", "test")}


def _split_dir(root: Path, split: str) -> Path:
    for name in SPLIT_DIRS[split]:
        if (root / name).is_dir():
            return root / name
    raise DataError(
        f"no {'/'.join(SPLIT_DIRS[split])}/ folder under {root}: an image folder needs "
        "train/<class>/*.jpg and val/<class>/*.jpg (the ImageNette layout)"
    )


def image_folder_dataset(root: str | Path, split: str, *, size: int = IMAGE_SIZE) -> Dataset:
    """A lazily loading dataset of (image in [0, 1] of shape (3, size, size), class index).

    Images are resized and centre-cropped as for ResNet; the mean/std normalisation of
    ResNet preprocessing is applied by :func:`resnet_preprocess`, so stored images stay
    in [0, 1] like every other dataset.
    """
    from torchvision import datasets, transforms

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    folder = _split_dir(root, split)
    tf = transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
        ]
    )
    try:
        return datasets.ImageFolder(str(folder), transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{folder}: {e}") from None


def resnet_preprocess(x: torch.Tensor) -> torch.Tensor:
    """ResNet preprocessing of images in [0, 1]: subtract the ImageNet mean, divide by std."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def load_image_folder(
    root: str | Path,
    split: str,
    *,
    n: int | None = None,
    size: int = IMAGE_SIZE,
    seed: int = 0,
    as_uint8: bool = False,
    progress: bool = False,
) -> ImageSet:
    """Up to ``n`` images of a split (a seeded sample when ``n`` is smaller) in memory.

    With ``as_uint8`` images are kept as bytes (a quarter of the memory: ImageNette's train
    split is 1.4 GB so); training converts each batch to floats in [0, 1].
    """
    from tqdm.auto import tqdm

    ds = image_folder_dataset(root, split, size=size)
    index = torch.arange(len(ds))
    if n is not None and n < len(ds):
        index = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = [], []
    for i in tqdm(index.tolist(), desc=f"load {split}", disable=not progress, leave=False):
        try:
            img, label = ds[i]
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            # A header that declares e.g. 40000x40000 pixels is refused by Pillow before decoding.
            raise DataError(f"{ds.samples[i][0]}: unreadable image ({e})") from None
        images.append(img.mul(255).round_().to(torch.uint8) if as_uint8 else img)
        labels.append(label)
    if not images:
        raise DataError(f"no images found under {Path(root) / SPLIT_DIRS[split][0]}")
    x = torch.stack(images)
    return ImageSet(x, {"class": torch.tensor(labels)}, "imagefolder", split, {"class": tuple(ds.classes)})


def _load(split: str, *, seed: int, data_root=None, download: bool = False, n: int | None = None) -> ImageSet:
    if data_root is None:
        raise DataError("imagefolder needs --data-root DIR with train/ and val/ class folders")
    return load_image_folder(data_root, split, n=n, seed=seed)


register_dataset(
    DatasetSpec(
        "imagefolder",
        _load,
        "a folder in the ImageNette layout (train/<class>/*.jpg, val/<class>/*.jpg), 224x224x3",
        task="class",
        needs_root=True,
    )
)
