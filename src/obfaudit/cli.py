"""The ``obfaudit`` command line: parses arguments, calls one library function, prints.

Help texts come from the settings dataclasses' field docstrings (:mod:`obfaudit._settings`).
The library never prints or exits; this module does both. Every user-fixable problem
(:class:`~obfaudit.errors.ObfauditError`) becomes one line on stderr and exit status 1;
bad arguments are refused by argparse (exit status 2) before any work starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from obfaudit._settings import add_options, pick
from obfaudit._version import __version__
from obfaudit.errors import ObfauditError

DATASET_CHOICES = ("mnist", "colored-mnist", "noisy", "path", "imagefolder")
DIGITS = ("mnist", "colored-mnist")


def _number_arg(kind: Callable[[str], float], accept: Callable[[float], bool], expected: str):
    """An argparse type: ``kind(text)`` if ``accept`` holds, else one line saying what was expected."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


positive_int = _number_arg(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number_arg(int, lambda v: v >= 0, "an integer of 0 or more")
positive_float = _number_arg(float, lambda v: 0 < v < float("inf"), "a positive finite number")
non_negative_float = _number_arg(float, lambda v: 0 <= v < float("inf"), "a finite number >= 0")
n_tsne = _number_arg(int, lambda v: v >= 50, "at least 50 points (t-SNE and its k-NN scores need them)")


def device_arg(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or text.startswith("cuda:"):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}: use cpu, cuda, cuda:N or auto")


def shape_arg(text: str) -> tuple[int, int, int]:
    from obfaudit.cost import parse_shape

    try:
        return parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: Validating types and choices shared by every command that has the option.
CHECKS: dict[str, dict] = {
    "seed": {"type": non_negative_int},
    "device": {"type": device_arg},
    "epochs": {"type": positive_int},
    "batch_size": {"type": positive_int},
    "lr": {"type": positive_float},
    "precision": {"choices": ("bf16", "fp32")},
    "patience": {"type": non_negative_int, "default": 0},
    "shift": {"type": non_negative_int, "metavar": "PX"},
    "n": {"type": positive_int},
    "n_train": {"type": positive_int},
    "n_test": {"type": positive_int},
    "n_proxy": {"type": positive_int},
    "n_tsne": {"type": n_tsne},
    "tsne_backend": {"choices": ("opentsne", "sklearn")},
    "bottleneck": {"type": positive_int},
    "classes": {"type": positive_int},
    "input": {"type": shape_arg},
}


def add(parser, cls: type, names: list[str], **overrides: dict) -> None:
    """Options for fields ``names`` of ``cls``, with the shared checks and any overrides."""
    add_options(parser, cls, names, **{n: {**CHECKS.get(n, {}), **overrides.get(n, {})} for n in names})


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def emit(args: argparse.Namespace, result: object, text: str) -> None:
    """Print ``result`` as strict JSON with --json, else the human-readable ``text``."""
    from obfaudit._io import dumps

    print(dumps(result) if getattr(args, "json", False) else text)


def progress_enabled() -> bool:
    return os.environ.get("OBFAUDIT_NO_PROGRESS", "") == "" and sys.stderr.isatty()


def log(args: argparse.Namespace) -> Callable[[str], None]:
    def write(message: str) -> None:
        if not getattr(args, "json", False):
            print(f"[obfaudit] {message}", file=sys.stderr, flush=True)

    return write


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


# --------------------------------------------------------------------------- data


def cmd_data(args: argparse.Namespace) -> None:
    from obfaudit.commands import DataQuery, data_show, data_stats

    query = pick(args, DataQuery)
    if args.data_command == "export":
        from obfaudit.commands import data_export

        r = data_export(query, args.out)
        emit(
            args,
            r,
            f"wrote {r['images']['train']} + {r['images']['test']} images and attributes.csv "
            f"to {r['folder']}",
        )
        return
    if args.data_command == "stats":
        r = data_stats(query)
        lines = [
            f"{r['name']}: {r['images']} images of shape {tuple(r['shape'])}, "
            f"values in [{r['min']:.3f}, {r['max']:.3f}]"
        ]
        for label, per in r["counts"].items():
            spread = max(per.values()) - min(per.values()) if per else 0
            lines.append(f"{label} (spread {spread}): " + ", ".join(f"{k} {v}" for k, v in per.items()))
        emit(args, r, "\n".join(lines))
    else:
        r = data_show(
            query if query.n else pick(args, DataQuery, n=40), args.out or Path(f"{args.dataset}.png")
        )
        emit(args, r, f"wrote {r['figure']}")


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    from obfaudit.commands import DataQuery

    data = sub.add_parser("data", help="inspect the datasets", description="Inspect the datasets.")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="{stats,show,export}")
    for name, doc in (
        ("stats", "Count images per digit and per colour."),
        ("show", "Write a PNG grid of samples (as the study's figures 3-5)."),
        (
            "export",
            "Write MNIST or Colored-MNIST as an image folder (train/<digit>/*.png, test/<digit>/*.png) with "
            "attributes.csv: the layout obfaudit audit --data DIR reads, and an example of it.",
        ),
    ):
        p = dsub.add_parser(name, help=doc, description=doc)
        p.add_argument("dataset", choices=DATASET_CHOICES, help="which dataset")
        add(
            p,
            DataQuery,
            ["split", "n", "seed", "data_root", "download"],
            split={"choices": ("train", "test")},
        )
        if name == "show":
            p.add_argument(
                "--out", type=Path, default=Path("."), help="directory for DATASET-SPLIT.png (default: .)"
            )
        if name == "export":
            p.add_argument("--out", type=Path, required=True, help="directory for the image folder")
        add_json(p)
        p.set_defaults(func=cmd_data)


# --------------------------------------------------------------------------- train

TRAINING = ["epochs", "batch_size", "lr", "precision", "patience", "shift", "seed", "device"]


def _train_job(args: argparse.Namespace):
    from obfaudit.commands import TrainJob
    from obfaudit.train import TrainConfig

    config = pick(
        args,
        TrainConfig,
        patience=args.patience or None,
        val_fraction=0.1 if args.patience else 0.0,
        progress=progress_enabled(),
    )
    return pick(args, TrainJob, train=config)


def cmd_train(args: argparse.Namespace) -> None:
    from obfaudit.commands import train_infnet, train_obfnet

    job = _train_job(args)
    if args.train_command == "infnet":
        r = train_infnet(job)
        text = (
            f"InfNet-{job.arch.upper()} on {r['dataset']}: clean test accuracy {pct(r['clean_test_acc'])} "
            f"after {r['fit']['epochs_run']} epochs -> {r['model']}"
        )
    else:
        r = train_obfnet(job)
        text = (
            f"ObfNet-{job.arch.upper()}(N={job.bottleneck}) on {r['dataset']}: obfuscated test accuracy "
            f"{pct(r['obfuscated_test_acc'])} (clean {pct(r['clean_test_acc'])}) -> {r['model']}"
        )
    emit(args, r, text)


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    from obfaudit.commands import TrainJob
    from obfaudit.defences import defence_names
    from obfaudit.train import TrainConfig

    train = sub.add_parser("train", help="train and save a model", description="Train and save a model.")
    tsub = train.add_subparsers(dest="train_command", required=True, metavar="{infnet,obfnet}")
    p = tsub.add_parser(
        "infnet",
        help="train an inference network on the clean digit task",
        description="Train an InfNet (the server's classifier) on clean digits.",
    )
    add(
        p,
        TrainJob,
        ["arch", "data"],
        arch={"choices": ("cnn", "mlp")},
        data={"choices": DIGITS, "default": "colored-mnist"},
    )
    add(p, TrainConfig, TRAINING, epochs={"default": 20})
    add(p, TrainJob, ["data_root", "download", "out"], out={"required": True})
    add_json(p)
    p.set_defaults(func=cmd_train)

    p = tsub.add_parser(
        "obfnet",
        help="train an obfuscation network through a frozen InfNet",
        description="Train an ObfNet to minimise the frozen InfNet's loss on ObfNet(x).",
    )
    add(
        p,
        TrainJob,
        ["arch", "bottleneck", "infnet", "data", "infnet_dropout", "defence", "strength"],
        arch={"choices": ("mlp", "cnn"), "default": "mlp"},
        bottleneck={"required": True},
        infnet={"required": True},
        data={"choices": DIGITS},
        defence={"choices": defence_names()},
        strength={"type": non_negative_float, "metavar": "X"},
    )
    add(p, TrainConfig, TRAINING, epochs={"default": 20})
    add(p, TrainJob, ["data_root", "download", "out"], out={"required": True})
    add_json(p)
    p.set_defaults(func=cmd_train)


def cmd_obfuscate(args: argparse.Namespace) -> None:
    from obfaudit.commands import ObfuscateJob, obfuscate

    r = obfuscate(pick(args, ObfuscateJob))
    emit(args, r, f"wrote {r['figure']}")


def add_obfuscate_command(sub: argparse._SubParsersAction) -> None:
    from obfaudit.commands import ObfuscateJob

    p = sub.add_parser(
        "obfuscate",
        help="show originals and their obfuscations (figures 7-8)",
        description="Write a PNG: test originals above, their obfuscations below.",
    )
    add(
        p,
        ObfuscateJob,
        ["obfnet", "data", "n", "seed", "device", "data_root", "download", "out"],
        obfnet={"required": True},
        data={"choices": DIGITS},
    )
    add_json(p)
    p.set_defaults(func=cmd_obfuscate)


# --------------------------------------------------------------------------- attack


def cmd_attack(args: argparse.Namespace) -> None:
    from obfaudit.commands import AttackJob, run_attacks

    r = run_attacks(pick(args, AttackJob, progress=progress_enabled()), log=log(args))
    lines = [f"{'subject':<28} {'attack':<10} {'party':<12} {'score':>8}  verdict"]
    for rec in r["records"]:
        m = rec["metrics"]
        fa = m.get("feature_accuracy")
        score = f"{fa:8.2%}" if fa is not None else f"SSIM {m.get('ssim') or float('nan'):.3f}"
        lines.append(
            f"{rec['subject']:<28} {rec['attack']:<10} {rec['party']:<12} {score:>8}  {rec['verdict'] or '-'}"
        )
    for subject, skipped in r["skipped"].items():
        for attack, why in skipped.items():
            lines.append(f"{subject}: {attack} did not run ({why})")
    lines.append(f"wrote {r['json']}, {r['csv']}" + "".join(f", {f}" for f in r["figures"]))
    emit(args, r, "\n".join(lines))


def add_attack_command(sub: argparse._SubParsersAction) -> None:
    from obfaudit.attacks import attacks_table
    from obfaudit.commands import AttackJob

    table = attacks_table()
    listing = "; ".join(f"{a['attack']} ({a['description']})" for a in table)
    p = sub.add_parser(
        "attack",
        help="run attacks on one transform",
        description="Run registered attacks on one transform, each under its own party, with the identity "
        f"and null controls beside it. Attacks: {listing}.",
    )
    add(
        p,
        AttackJob,
        ["attacks"],
        attacks={
            "flag": "--attack",
            "choices": [a["attack"] for a in table],
            "required": True,
            "metavar": "NAME",
        },
    )
    src = p.add_mutually_exclusive_group(required=True)
    add(src, AttackJob, ["obfnet", "transform", "control"], control={"choices": ("identity", "null")})
    add(
        p,
        AttackJob,
        [
            "data",
            "infnet",
            "epochs",
            "n_train",
            "n_test",
            "n_proxy",
            "n_tsne",
            "tsne_backend",
            "no_controls",
            "seed",
            "device",
            "data_root",
            "download",
            "out",
        ],
        data={"choices": DIGITS},
        out={"required": True},
    )
    add_json(p)
    p.set_defaults(func=cmd_attack)


def cmd_audit(args: argparse.Namespace) -> None:
    from obfaudit.commands import AuditJob, run_audit

    r = run_audit(pick(args, AuditJob, progress=progress_enabled()), log=log(args))
    b = r["baselines"]
    lines = [
        f"{r['subject']}: {r['verdict'] or 'no verdict'} on {b['attribute']} "
        f"(line {b['threshold']:.0%}, chance {b['chance']:.1%}, majority class {b['majority_class']:.1%})"
    ]
    for rec in r["records"]:
        m = rec["metrics"]
        fa, ci = m.get("feature_accuracy"), m.get("feature_accuracy_ci")
        score = f"F_a {fa:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "") if fa is not None else ""
        if m.get("ssim") is not None:
            score += f"{'; ' if score else ''}SSIM {m['ssim']:.3f}"
        lines.append(f"  {rec['attack']:<10} {rec['party']:<12} {score:<32} {rec['verdict'] or '-'}")
    for subject, verdict in r["verdicts"].items():
        if subject != r["subject"]:
            lines.append(f"  control {subject}: {verdict or 'no verdict'}")
    lines.append(f"report: {r['report']}")
    emit(args, r, "\n".join(lines))


def add_audit_command(sub: argparse._SubParsersAction) -> None:
    from obfaudit.attacks import attack_names
    from obfaudit.commands import AuditJob

    p = sub.add_parser(
        "audit",
        help="audit any transform on your data and sensitive attribute, with intervals",
        description="Audit one transform (a control, an ONNX file, a saved model or MODULE:CALLABLE) on "
        "Colored-MNIST or your own image folder and sensitive attribute: every applicable registered attack "
        "under its party, 95% bootstrap intervals, three-way verdicts, the chance and majority baselines, "
        "and the identity, null and random-weights controls. Writes results.json/csv, figures and "
        "report.html.",
    )
    add(
        p,
        AuditJob,
        [
            "transform",
            "data",
            "attributes",
            "attribute",
            "size",
            "proxy",
            "attacks",
            "repeats",
            "infnet",
            "epochs",
            "traffic",
            "edge_record",
        ],
        transform={"required": True, "metavar": "SRC"},
        data={"metavar": "colored-mnist|DIR"},
        proxy={"metavar": "noisy|path|DIR"},
        attacks={"flag": "--attack", "choices": attack_names(), "metavar": "NAME"},
        repeats={"type": positive_int, "metavar": "K"},
        size={"type": positive_int},
        traffic={"metavar": "CAPTURE"},
        edge_record={"metavar": "EDGE_JSON"},
    )
    add(
        p,
        AuditJob,
        ["n_train", "n_test", "n_proxy", "n_tsne", "no_controls", "executor", "address", "seed", "device"],
        executor={"choices": ("serial", "ray")},
        address={"metavar": "auto|HOST:PORT"},
    )
    add(p, AuditJob, ["data_root", "out"], out={"required": True})
    add_json(p)
    p.set_defaults(func=cmd_audit)


# --------------------------------------------------------------------------- reproduce, cost, report


def cmd_reproduce(args: argparse.Namespace) -> None:
    from obfaudit.experiments.context import RunSettings
    from obfaudit.experiments.presets import get_preset
    from obfaudit.experiments.reproduce import reproduce

    settings = pick(args, RunSettings)
    preset = get_preset(settings.preset)
    if (preset.full_mnist or preset.scaling) and settings.data_root is None:
        raise ObfauditError(f"preset {preset.name!r} needs --data-root DIR ({preset.description})")
    if settings.data_root is not None and not settings.data_root.is_dir() and not settings.download:
        raise ObfauditError(f"--data-root {settings.data_root} is not a directory")
    if settings.resnet_weights is not None and not settings.resnet_weights.is_file():
        raise ObfauditError(f"--resnet-weights {settings.resnet_weights}: file not found")
    summary = reproduce(settings, progress=progress_enabled(), log=log(args))
    lines = [
        f"done in {summary['seconds']:.0f} s: {len(summary['stages_run'])} stages run, "
        f"{len(summary['stages_skipped'])} already finished"
    ]
    for f in summary["findings"]:
        state = {True: "reproduced", False: "NOT reproduced", None: "undecided"}[f["reproduced"]]
        lines.append(f"  [{state}] {f['claim']}")
    lines.append(f"report: {summary['report']}")
    emit(args, summary, "\n".join(lines))


def cmd_cost(args: argparse.Namespace) -> None:
    from obfaudit.commands import CostQuery, cost
    from obfaudit.cost import format_table

    r = cost(pick(args, CostQuery))
    emit(args, r, format_table(r["rows"]))


def cmd_report(args: argparse.Namespace) -> None:
    from obfaudit.commands import rebuild_report

    r = rebuild_report(args.run_dir)
    emit(args, r, f"rebuilt {r['report']} with {len(r['figures'])} figures")


def add_reproduce_commands(sub: argparse._SubParsersAction) -> None:
    from obfaudit.attacks import attack_names
    from obfaudit.commands import CostQuery
    from obfaudit.experiments.context import RunSettings
    from obfaudit.experiments.presets import PRESETS
    from obfaudit.experiments.stages import EXECUTORS

    presets = "; ".join(f"{n}: {p.description}" for n, p in PRESETS.items())
    p = sub.add_parser(
        "reproduce",
        help="reproduce every experiment of the study (resumable)",
        description="Reproduce the study: InfNets, the ObfNet sweep, every attack, the controls, the cost "
        "table, figures and report.html. Rerunning the same command skips finished stages. Presets: "
        + presets,
    )
    add(
        p,
        RunSettings,
        [
            "preset",
            "attacks",
            "infnet_dropout",
            "resnet_weights",
            "data_root",
            "download",
            "executor",
            "address",
            "seed",
            "device",
            "out",
        ],
        preset={"choices": tuple(PRESETS)},
        address={"metavar": "auto|HOST:PORT"},
        attacks={"flag": "--attack", "choices": attack_names(), "metavar": "NAME"},
        executor={"choices": tuple(EXECUTORS)},
    )
    add_json(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser(
        "cost",
        help="Table 1: parameters, FLOPs and size of the models",
        description="Parameters, FLOPs and float32 size of ResNet50, ObfNet-MLP/CNN, LightNet and DenseNet "
        "for an input shape, beside the study's Table 1 (at 224x224x3, N=512). Models are built on the meta "
        "device: no "
        "memory is spent on weights.",
    )
    add(p, CostQuery, ["input", "bottleneck", "classes"], input={"metavar": "HxWxC", "shown": "224x224x3"})
    add_json(p)
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser(
        "report",
        help="rebuild results, figures and report.html of a run directory",
        description="Rebuild results.json, results.csv, figures and report.html from a run's stored stages "
        "(nothing is retrained).",
    )
    p.add_argument("run_dir", type=Path, help="a directory written by obfaudit reproduce")
    add_json(p)
    p.set_defaults(func=cmd_report)


# --------------------------------------------------------------------------- main

# --------------------------------------------------------------------------- the live system


def _announce(line: str) -> None:
    print(line, flush=True)


def cmd_serve(args: argparse.Namespace) -> None:
    from obfaudit.serve.jobs import ServeJob, serve

    serve(pick(args, ServeJob), announce=_announce)


def cmd_tap(args: argparse.Namespace) -> None:
    from obfaudit.serve.jobs import TapJob, tap

    tap(pick(args, TapJob), announce=_announce)


def cmd_edge(args: argparse.Namespace) -> None:
    from obfaudit.serve.edge import EdgeJob, run_edge

    r = run_edge(pick(args, EdgeJob, progress=progress_enabled()), log=log(args))
    lat = r["latency_ms"]
    server = r["server_ms_per_request"]
    lines = [
        f"{r['images']} images in {r['requests']} requests, {r['wire']} on the wire: "
        f"server accuracy {r['accuracy']:.2%}",
        f"  {r['body_bytes_per_image']:.0f} bytes/image on the wire "
        f"({r['tensor_bytes_per_image']:.0f} of tensor)",
        f"  latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms; "
        f"{r['images_per_s']:.0f} images/s, {r['requests_per_s']:.0f} requests/s",
        f"  obfuscation on this device {r['obfuscate_ms_per_image']:.3f} ms/image",
    ]
    if server:
        lines.append(
            f"  server per request: decode {server['compute_input_ms']:.2f} ms, "
            f"infer {server['compute_infer_ms']:.2f} ms, encode {server['compute_output_ms']:.2f} ms"
        )
    lines.append(f"record: {r['record']}")
    emit(args, r, "\n".join(lines))


def cmd_export(args: argparse.Namespace) -> None:
    from obfaudit.serve.export import ExportJob, export_obfnet

    r = export_obfnet(pick(args, ExportJob))
    t = r["latency_single_thread"]
    parity = (
        r["parity_note"]
        or f"max |ONNX - PyTorch| {r['parity_max_abs_diff']:.2e} on {r['parity_images']} images"
    )
    text = "\n".join(
        [
            f"{r['onnx']}: {r['arch']}, {r['parameters']:,} parameters, {r['onnx_bytes'] / 1e6:.2f} MB",
            f"  parity: {parity}",
            f"  one image, one thread: onnxruntime {t['onnxruntime']['median_ms']:.3f} ms "
            f"(p95 {t['onnxruntime']['p95_ms']:.3f}), PyTorch {t['pytorch']['median_ms']:.3f} ms "
            f"(p95 {t['pytorch']['p95_ms']:.3f})",
        ]
    )
    emit(args, r, text)


def add_live_commands(sub: argparse._SubParsersAction) -> None:
    from obfaudit.serve.edge import EdgeJob
    from obfaudit.serve.export import ExportJob
    from obfaudit.serve.jobs import ServeJob, TapJob

    p = sub.add_parser(
        "serve",
        help="serve an InfNet over the Open Inference Protocol (KServe V2 REST)",
        description="Serve a saved InfNet over the Open Inference Protocol (KServe V2 REST, with binary "
        "tensors): the server of the study's system. Bad requests get a 4xx and a JSON error.",
    )
    add(
        p,
        ServeJob,
        ["infnet", "name", "host", "port", "token", "max_body", "max_batch", "log", "threads", "device"],
        infnet={"required": True, "metavar": "MODEL"},
        port={"type": non_negative_int},
        max_body={"type": positive_int, "metavar": "BYTES"},
        max_batch={"type": positive_int},
        threads={"type": positive_int},
        log={"metavar": "FILE"},
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "tap",
        help="forward traffic to a server and record the tensors it carries",
        description="An eavesdropper on the wire: forwards every request to the upstream server unchanged "
        "and records the obfuscated tensors (and the server's labels) to a safetensors capture, which "
        "'obfaudit audit --traffic' attacks.",
    )
    add(
        p,
        TapJob,
        ["listen", "upstream", "capture", "flush_seconds"],
        upstream={"required": True, "metavar": "HOST:PORT"},
        capture={"required": True, "metavar": "FILE"},
        listen={"metavar": "HOST:PORT"},
        flush_seconds={"type": positive_float},
    )
    p.set_defaults(func=cmd_tap)

    p = sub.add_parser(
        "edge",
        help="obfuscate test images locally and send them to a server",
        description="The edge device: obfuscates test images with an ObfNet (PyTorch or ONNX), sends them to "
        "an Open Inference Protocol server, and reports utility, bytes per image on the wire, latency "
        "percentiles and throughput. Writes edge.json, the record that scores a capture.",
    )
    add(
        p,
        EdgeJob,
        [
            "obfnet",
            "server",
            "model",
            "input_name",
            "output",
            "wire",
            "batch_size",
            "concurrency",
            "n",
            "token",
            "timeout",
            "data",
            "attributes",
            "attribute",
            "size",
            "data_root",
            "seed",
            "device",
            "out",
        ],
        obfnet={"required": True, "metavar": "MODEL"},
        server={"required": True, "metavar": "URL"},
        wire={"choices": ("float32", "float16", "uint8")},
        concurrency={"type": positive_int},
        timeout={"type": positive_float},
        size={"type": positive_int},
        data={"metavar": "colored-mnist|DIR"},
    )
    add_json(p)
    p.set_defaults(func=cmd_edge)

    p = sub.add_parser(
        "export",
        help="export an ObfNet to ONNX, with parity, size and single-thread latency",
        description="Export a saved ObfNet to ONNX for the device, check it against PyTorch, and measure its "
        "size and its single-image latency on one thread (onnxruntime and PyTorch).",
    )
    add(
        p,
        ExportJob,
        ["obfnet", "onnx", "check_images", "tolerance", "timing_runs", "seed"],
        obfnet={"required": True, "metavar": "MODEL"},
        onnx={"required": True, "metavar": "FILE"},
        check_images={"type": positive_int},
        tolerance={"type": positive_float},
        timing_runs={"type": positive_int},
    )
    add_json(p)
    p.set_defaults(func=cmd_export)


COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_data_commands,
    add_train_commands,
    add_obfuscate_command,
    add_attack_command,
    add_audit_command,
    add_reproduce_commands,
    add_live_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obfaudit",
        description="Audit privacy-preserving data transformations (ObfNet and others) with "
        "reconstruction, attribute-inference and embedding attacks.",
    )
    parser.add_argument("--version", action="version", version=f"obfaudit {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the Python traceback of an error, not only its line"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_group in COMMAND_GROUPS:
        add_group(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ObfauditError as e:  # e.g. a plugin named in OBFAUDIT_PLUGINS fails to import
        print(f"obfaudit: error: {e}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    from obfaudit._io import keep_freed_memory

    keep_freed_memory()
    if not progress_enabled() and not getattr(args, "json", False):
        # no progress bars off a terminal (CI, logs): one line per training epoch instead
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[obfaudit] %(message)s"))
        train_log = logging.getLogger("obfaudit.train")
        train_log.addHandler(handler)
        train_log.setLevel(logging.INFO)
    try:
        args.func(args)
    except ObfauditError as e:
        if args.debug:
            traceback.print_exc()
        print(f"obfaudit: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("obfaudit: error: out of memory; ask for fewer images or a smaller model", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("obfaudit: interrupted; finished stages are kept, rerun to resume", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug of ours: one line, the traceback on request
        if args.debug:
            raise
        print(
            f"obfaudit: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def run() -> None:
    """Console entry point: :func:`main`, then leave without tearing the interpreter down.

    Everything obfaudit writes is closed by the time :func:`main` returns, so what
    remains of an ordinary exit is torch's shared libraries (CUDA build) running their
    destructors. Measured here, that teardown alone touches ~190 MB more than the work
    did (``obfaudit cost``: 1.12 GB peak with it, 0.93 GB without).
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed early, e.g. piped into `head`
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
