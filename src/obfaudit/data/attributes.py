"""A user's own images with a sensitive attribute: class folders plus an attributes CSV.

Layout: ``DIR/train/<class>/*.png|jpg`` and ``DIR/test/<class>/*`` (the task classes),
and ``DIR/attributes.csv`` (or another file) with a ``path`` column relative to ``DIR``
and one column per attribute, values given as class names::

    path,skin_tone,device
    train/cat/0001.png,dark,phone
    ...

An adversary's proxy folder lists its images in the same kind of CSV (``path`` and the
attribute columns); its images may lie anywhere under its folder.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import torch

from obfaudit.data.base import ImageSet, ProxySet
from obfaudit.errors import DataError, ThreatModelError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TASK = "class"


def read_attributes(csv_path: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """{relative path: {attribute: value}} and the attribute names, checked."""
    if not csv_path.is_file():
        raise DataError(
            f"{csv_path}: attributes CSV not found (a 'path' column and one column per attribute)"
        )
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
            names = [c for c in (rows[0].keys() if rows else []) if c != "path"]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{csv_path}: not a readable CSV ({e})") from None
    if not rows or "path" not in rows[0]:
        raise DataError(f"{csv_path}: needs a header with a 'path' column and at least one attribute column")
    if not names:
        raise DataError(f"{csv_path}: no attribute columns besides 'path'")
    table: dict[str, dict[str, str]] = {}
    for i, row in enumerate(rows, start=2):
        key = (row.get("path") or "").strip().replace("\\", "/")
        empty = [n for n in names if not (row.get(n) or "").strip()]
        if not key or empty:
            raise DataError(f"{csv_path}, line {i}: {'no path' if not key else 'empty ' + ', '.join(empty)}")
        table[key] = {n: row[n].strip() for n in names}
    return table, names


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _read(
    paths: list[Path], size: tuple[int, int] | None, mode: str | None
) -> tuple[torch.Tensor, tuple, str]:
    """Images as floats in [0, 1], resized to ``size`` (default: the first image's)."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as img:
                if size is None:
                    size = (img.height, img.width)
                    mode = "L" if img.mode in ("L", "1", "I;16") else "RGB"
                img = img.convert(mode)
                if (img.height, img.width) != size:
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                a = np.asarray(img, dtype=np.float32) / 255.0
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{p}: unreadable image ({e})") from None
        out.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)), size, mode


def _classes(values: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


def load_attribute_folder(
    root: str | Path,
    split: str,
    *,
    attributes: str | Path | None = None,
    size: int | None = None,
    n: int | None = None,
) -> ImageSet:
    """One split of a class-folder dataset with attribute labels from the CSV.

    Labels: ``class`` (the folder) and one per attribute column. Class names index every
    label in sorted order, the same for both splits. Every image needs a CSV row.
    """
    root = Path(root).expanduser()
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(
            f"{split_dir}: missing; a dataset folder needs train/<class>/ and test/<class>/ images"
        )
    table, names = read_attributes(Path(attributes) if attributes else root / "attributes.csv")
    task_classes = tuple(sorted(d.name for d in split_dir.iterdir() if d.is_dir()))
    if not task_classes:
        raise DataError(f"{split_dir}: no class folders")
    all_task = tuple(
        sorted(
            {
                d.name
                for s in ("train", "test")
                if (root / s).is_dir()
                for d in (root / s).iterdir()
                if d.is_dir()
            }
        )
    )
    paths = [p for c in task_classes for p in _images(split_dir / c)]
    if n is not None:
        paths = paths[:n] if n < len(paths) else paths
    if not paths:
        raise DataError(f"{split_dir}: no PNG or JPEG images in its class folders")
    rel = [p.relative_to(root).as_posix() for p in paths]
    missing = [r for r in rel if r not in table]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(rel)} {split} images have no row in the attributes CSV, "
            f"e.g. {missing[0]}"
        )
    x, _, _ = _read(paths, (size, size) if size else _first_size(root), None)
    labels = {TASK: torch.tensor([all_task.index(p.parent.name) for p in paths])}
    classes: dict[str, tuple[str, ...]] = {TASK: all_task}
    for name in names:
        values = _classes([v[name] for v in table.values()])
        labels[name] = torch.tensor([values.index(table[r][name]) for r in rel])
        classes[name] = values
    return ImageSet(x, labels, root.name, split, classes)


def _first_size(root: Path) -> tuple[int, int]:
    """The size of the first training image: the default size of every image."""
    from PIL import Image

    first = _images(root / "train")
    if not first:
        raise DataError(f"{root / 'train'}: no PNG or JPEG images")
    try:
        with Image.open(first[0]) as img:
            return img.height, img.width
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{first[0]}: unreadable image ({e})") from None


def content_hashes(root: Path) -> set[str]:
    """SHA-256 of every image file under ``root`` (to find copies of private images)."""
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in _images(root)}


def load_proxy_folder(
    root: str | Path,
    *,
    attribute: str,
    classes: tuple[str, ...],
    shape: tuple[int, int, int],
    private: str | Path | None = None,
    attributes: str | Path | None = None,
) -> ProxySet:
    """The adversary's own images with ``attribute`` labels, at the private data's ``shape``.

    Its labels index ``classes``, the private attribute's values (the adversary knows
    which values exist: its background knowledge), so its predictions are comparable.

    Refused (the threat model) when it is the private folder itself or when any of its
    images is a byte-for-byte copy of a private image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"proxy folder {root} does not exist")
    if private is not None:
        private = Path(private).expanduser()
        if root.resolve() == private.resolve() or private.resolve() in root.resolve().parents:
            raise ThreatModelError(f"--proxy {root} is the private data: the adversary never holds it")
        overlap = content_hashes(root) & content_hashes(private)
        if overlap:
            raise ThreatModelError(
                f"--proxy {root} holds {len(overlap)} images that are copies of private images: "
                "the adversary's data must be its own"
            )
    table, names = read_attributes(Path(attributes) if attributes else root / "attributes.csv")
    if attribute not in names:
        raise DataError(f"{root}: no {attribute!r} column in its attributes CSV (it has {', '.join(names)})")
    rel = sorted(table)
    missing = [r for r in rel if not (root / r).is_file()]
    if missing:
        raise DataError(
            f"{root}: {len(missing)} images listed in its attributes CSV are missing, e.g. {missing[0]}"
        )
    c, h, w = shape
    x, _, _ = _read([root / r for r in rel], (h, w), "L" if c == 1 else "RGB")
    unknown = sorted({table[r][attribute] for r in rel} - set(classes))
    if unknown:
        raise DataError(
            f"{root}: {attribute} values {unknown} are not among the data's ({', '.join(classes)})"
        )
    values = tuple(classes)
    return ProxySet(
        x,
        {attribute: torch.tensor([values.index(table[r][attribute]) for r in rel])},
        root.name,
        "proxy",
        {attribute: values},
    )
