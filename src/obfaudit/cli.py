"""The ``obfaudit`` command line: parses arguments, calls the library, prints results.

The library never prints or exits; this module does both. Every user-fixable problem
(:class:`~obfaudit.errors.ObfauditError`) becomes one line on stderr and exit status 1;
bad arguments are refused by argparse (exit status 2) before any work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from obfaudit._version import __version__
from obfaudit.errors import ObfauditError

DATASET_CHOICES = ("mnist", "colored-mnist", "noisy", "path", "imagefolder")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def device_arg(text: str) -> str:
    if text == "auto" or text == "cpu" or text == "cuda" or text.startswith("cuda:"):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}: use cpu, cuda, cuda:N or auto")


def add_common(p: argparse.ArgumentParser, *, out_help: str, out_required: bool = False) -> None:
    """The options every command has: --seed, --device, --out, --json."""
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--device", type=device_arg, default="cpu",
        help="cpu, cuda, cuda:N or auto (default: cpu)",
    )
    p.add_argument("--out", type=Path, required=out_required, default=None, help=out_help)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_data_source(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-root", type=Path, default=None,
        help="directory with full MNIST (MNIST/raw/*-ubyte) or an image folder; "
        "default: the embedded 5,000-image MNIST subset",
    )
    p.add_argument(
        "--download", action="store_true",
        help="download full MNIST into --data-root when it is missing (needs a network)",
    )


def emit(args: argparse.Namespace, result: object, text: str) -> None:
    """Print ``result`` as JSON with --json, else the human-readable ``text``."""
    from obfaudit._io import to_jsonable

    if getattr(args, "json", False):
        print(json.dumps(to_jsonable(result), indent=2))
    else:
        print(text)


def progress_enabled() -> bool:
    return os.environ.get("OBFAUDIT_NO_PROGRESS", "") == "" and sys.stderr.isatty()


# --------------------------------------------------------------------------- data


def cmd_data_stats(args: argparse.Namespace) -> None:
    from obfaudit.data import load_dataset

    ds = load_dataset(
        args.dataset, split=args.split, seed=args.seed, n=args.n,
        data_root=args.data_root, download=args.download,
    )
    counts = ds.counts()
    result = {
        "dataset": args.dataset, "split": ds.split, "images": len(ds),
        "shape": list(ds.shape), "min": float(ds.x.min()), "max": float(ds.x.max()),
        "counts": counts,
    }
    lines = [f"{ds.name}: {len(ds)} images of shape {tuple(ds.shape)}, "
             f"values in [{result['min']:.3f}, {result['max']:.3f}]"]
    for label, per in counts.items():
        spread = max(per.values()) - min(per.values()) if per else 0
        lines.append(f"{label} (spread {spread}): " + ", ".join(f"{k} {v}" for k, v in per.items()))
    emit(args, result, "\n".join(lines))


def cmd_data_show(args: argparse.Namespace) -> None:
    from obfaudit.data import load_dataset
    from obfaudit.report.figures import sample_grid

    ds = load_dataset(
        args.dataset, split=args.split, seed=args.seed, n=args.n,
        data_root=args.data_root, download=args.download,
    )
    captions = []
    for i in range(len(ds)):
        parts = []
        for label, y in ds.labels.items():
            names = ds.classes.get(label)
            parts.append(names[int(y[i])] if names else str(int(y[i])))
        captions.append(" ".join(parts))
    out = args.out or Path(f"{args.dataset}.png")
    sample_grid(ds.x, out, labels=captions, title=f"{ds.name}: {len(ds)} samples")
    emit(args, {"figure": str(out), "images": len(ds)}, f"wrote {out}")


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect the datasets", description="Inspect the datasets.")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="{stats,show}")
    for name, func, doc, out_help, default_n in (
        ("stats", cmd_data_stats, "Count images per digit and per colour.",
         "unused (results go to stdout)", None),
        ("show", cmd_data_show, "Write a PNG grid of samples (as the study's figures 3-5).",
         "PNG file to write (default: DATASET.png)", 40),
    ):
        p = dsub.add_parser(name, help=doc, description=doc)
        p.add_argument("dataset", choices=DATASET_CHOICES, help="which dataset")
        p.add_argument("--split", choices=("train", "test"), default="train",
                       help="train or test split (default: train; proxies have one)")
        p.add_argument("--n", type=positive_int, default=default_n,
                       help="number of images (default: all for stats, 40 for show)")
        add_data_source(p)
        add_common(p, out_help=out_help)
        p.set_defaults(func=func)


# --------------------------------------------------------------------------- main

COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = [add_data_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obfaudit",
        description="Audit privacy-preserving data transformations (ObfNet and others) with "
        "reconstruction, attribute-inference and embedding attacks.",
    )
    parser.add_argument("--version", action="version", version=f"obfaudit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMAND_GROUPS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ObfauditError as e:
        print(f"obfaudit: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("obfaudit: interrupted; finished stages are kept, rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
