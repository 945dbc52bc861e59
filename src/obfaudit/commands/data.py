"""``obfaudit data stats|show|export``: look at a dataset, or write it as an image folder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from obfaudit.commands._base import Command, Interface, OutputPath, Result, check_outputs, json_option, pick
from obfaudit.commands._options import add, registered
from obfaudit.errors import ObfauditError


def _all_names() -> tuple[str, ...]:
    from obfaudit.data import all_dataset_names

    return all_dataset_names()


@dataclass(frozen=True, kw_only=True)
class DataQuery:
    """Which images ``obfaudit data`` looks at."""

    dataset: str
    """Which dataset."""
    split: str = "train"
    """train or test split (proxies have one)."""
    n: int | None = None
    """Number of images (stats: all by default)."""
    seed: int = 0
    """Seeds the train/test split, the colours and the generated proxies."""
    data_root: Path | None = None
    """Directory with full MNIST (MNIST/raw/*-ubyte) or an image folder; default: the embedded
    5,000-image MNIST subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    size: int | None = None
    """Side in pixels of a generated dataset's images (shapes; default 64)."""

    def load(self, **kw):
        from obfaudit._io import check_fits_in_memory
        from obfaudit.attacks.prepare import proxy_bytes
        from obfaudit.data import load_dataset, proxy_names

        n = kw.get("n", self.n)
        if self.dataset in proxy_names() and n:  # generated: n images are made, whatever n is
            check_fits_in_memory(proxy_bytes(n, copies=2), f"--n {n}")
        return load_dataset(
            kw.get("dataset", self.dataset),
            split=kw.get("split", self.split),
            seed=kw.get("seed", self.seed),
            n=n,
            data_root=self.data_root,
            download=self.download,
            size=self.size,
        )


@dataclass
class DataStats(Result):
    """Images per label class, the shape and the value range of a dataset."""

    dataset: str
    name: str
    split: str
    images: int
    shape: list[int]
    min: float
    max: float
    counts: dict[str, dict[str, int]]

    def summary(self) -> str:
        lines = [
            f"{self.name}: {self.images} images of shape {tuple(self.shape)}, "
            f"values in [{self.min:.3f}, {self.max:.3f}]"
        ]
        for label, per in self.counts.items():
            spread = max(per.values()) - min(per.values()) if per else 0
            lines.append(f"{label} (spread {spread}): " + ", ".join(f"{k} {v}" for k, v in per.items()))
        return "\n".join(lines)


@dataclass
class Figure(Result):
    """A figure written."""

    figure: str
    images: int

    def summary(self) -> str:
        return f"wrote {self.figure}"


@dataclass
class ExportedFolder(Result):
    folder: str
    images: dict[str, int]
    attributes: list[str]

    def summary(self) -> str:
        return (
            f"wrote {self.images['train']} + {self.images['test']} images and attributes.csv to {self.folder}"
        )


def data_stats(q: DataQuery) -> DataStats:
    """Images per label class, the shape and the value range of a dataset."""
    from obfaudit.train import as_float

    ds = q.load()
    return DataStats(
        dataset=q.dataset,
        name=ds.name,
        split=ds.split,
        images=len(ds),
        shape=list(ds.shape),
        min=float(as_float(ds.x).min()),
        max=float(as_float(ds.x).max()),
        counts=ds.counts(),
    )


def show_path(q: DataQuery, out: Path) -> Path:
    """Where ``data show --out OUT`` writes: OUT itself when it names a .png, else OUT/DATASET-SPLIT.png."""
    return out if out.suffix.lower() == ".png" else out / f"{q.dataset}-{q.split}.png"


def data_show(q: DataQuery, out: Path) -> Figure:
    """A PNG grid of samples, each captioned with its labels."""
    from obfaudit.report.figures import sample_grid

    path = show_path(q, out)
    check_outputs([OutputPath(path, "--out", is_dir=False)])
    ds = q.load()
    captions = [
        " ".join(
            (ds.classes[label][int(y[i])] if ds.classes.get(label) else str(int(y[i])))
            for label, y in ds.labels.items()
        )
        for i in range(len(ds))
    ]
    sample_grid(ds.x, path, labels=captions, title=f"{ds.name}: {len(ds)} samples")
    return Figure(str(path), len(ds))


def data_export(q: DataQuery, out: Path) -> ExportedFolder:
    """Write a dataset with a task label as an image folder: ``out/train/<task class>/*.png``,
    ``out/test/...`` and ``out/attributes.csv`` (its other labels, e.g. colour): the layout
    ``obfaudit audit`` reads."""
    import csv
    import io

    import numpy as np
    import torch
    from PIL import Image

    from obfaudit._io import atomic_write_text
    from obfaudit.data import dataset_names, dataset_spec

    exportable = [n for n in dataset_names() if dataset_spec(n).task and not dataset_spec(n).needs_root]
    if q.dataset not in exportable:
        raise ObfauditError(f"data export writes {', '.join(exportable)}, not {q.dataset}")
    task = dataset_spec(q.dataset).task
    check_outputs([OutputPath(out, "--out")])
    rows, counts = [], {}
    for split in ("train", "test"):
        ds = q.load(split=split)
        others = [k for k in ds.labels if k != task]
        for i in range(len(ds)):
            digit = ds.classes[task][int(ds.labels[task][i])]
            rel = f"{split}/{digit}/{i:05d}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            pixels = (ds.x[i].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            image = pixels[..., 0] if pixels.shape[2] == 1 else np.ascontiguousarray(pixels)
            Image.fromarray(image).save(out / rel)
            rows.append({"path": rel, **{k: ds.classes[k][int(ds.labels[k][i])] for k in others}})
        counts[split] = len(ds)
    buf = io.StringIO()
    fields = ["path", *[k for k in rows[0] if k != "path"]] if rows else ["path"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "attributes.csv", buf.getvalue())
    return ExportedFolder(str(out), counts, fields[1:])


SUBCOMMANDS = (
    ("stats", "Count images per label class (digit, colour)."),
    ("show", "Write a PNG grid of samples (as the study's figures 3-5)."),
    (
        "export",
        "Write MNIST or Colored-MNIST as an image folder (train/<digit>/*.png, test/<digit>/*.png) with "
        "attributes.csv: the layout obfaudit audit --data DIR reads, and an example of it.",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="{stats,show,export}")
    for name, doc in SUBCOMMANDS:
        p = sub.add_parser(name, help=doc, description=doc)
        p.add_argument(
            "dataset",
            type=registered(_all_names, "dataset"),
            metavar="DATASET",
            help="which dataset: mnist, colored-mnist, shapes (generated, any --size), the proxies noisy "
            "and path, or imagefolder (with --data-root)",
        )
        add(
            p,
            DataQuery,
            ["split", "n", "seed", "data_root", "download", "size"],
            split={"choices": ("train", "test")},
        )
        if name == "show":
            p.add_argument(
                "--out",
                type=Path,
                default=Path("."),
                help="the PNG to write (X.png), or a directory for DATASET-SPLIT.png (default: .)",
            )
        if name == "export":
            p.add_argument("--out", type=Path, required=True, help="directory for the image folder")
        json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    query = pick(args, DataQuery)
    if args.data_command == "export":
        return data_export(query, args.out)
    if args.data_command == "stats":
        return data_stats(query)
    return data_show(query if query.n else pick(args, DataQuery, n=40), args.out)


COMMAND = Command("data", "inspect the datasets", "Inspect the datasets.", add_arguments, run)
