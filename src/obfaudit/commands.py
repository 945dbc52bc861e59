"""What each command does, as library functions; the CLI only parses, calls one, and prints.

Each command's settings are a dataclass whose field docstrings are the ``--help`` texts.
Every function returns a plain dict (what ``--json`` prints); none prints or exits.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from obfaudit._io import check_fits_in_memory, check_output_dir, resolve_device, write_json
from obfaudit._version import __version__
from obfaudit.errors import ObfauditError
from obfaudit.train import TrainConfig, as_float

DIGIT_DATASETS = ("mnist", "colored-mnist")


# ----------------------------------------------------------------------------- data


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

    def load(self, **kw):
        from obfaudit.data import PROXY_DATASETS, load_dataset

        n = kw.get("n", self.n)
        if self.dataset in PROXY_DATASETS and n:  # generated: n images are made, whatever n is
            check_fits_in_memory(proxy_bytes(n, copies=2), f"--n {n}")
        return load_dataset(
            kw.get("dataset", self.dataset),
            split=kw.get("split", self.split),
            seed=kw.get("seed", self.seed),
            n=kw.get("n", self.n),
            data_root=self.data_root,
            download=self.download,
        )


def data_stats(q: DataQuery) -> dict:
    """Images per label class, the shape and the value range of a dataset."""
    ds = q.load()
    return {
        "dataset": q.dataset,
        "name": ds.name,
        "split": ds.split,
        "images": len(ds),
        "shape": list(ds.shape),
        "min": float(as_float(ds.x).min()),
        "max": float(as_float(ds.x).max()),
        "counts": ds.counts(),
    }


def data_show(q: DataQuery, out: Path) -> dict:
    """A PNG grid of samples, each captioned with its labels, written to ``out/DATASET-SPLIT.png``."""
    from obfaudit.report.figures import sample_grid

    out = check_output_dir(out) / f"{q.dataset}-{q.split}.png"
    ds = q.load()
    captions = [
        " ".join(
            (ds.classes[label][int(y[i])] if ds.classes.get(label) else str(int(y[i])))
            for label, y in ds.labels.items()
        )
        for i in range(len(ds))
    ]
    sample_grid(ds.x, out, labels=captions, title=f"{ds.name}: {len(ds)} samples")
    return {"figure": str(out), "images": len(ds)}


def data_export(q: DataQuery, out: Path) -> dict:
    """Write a digit dataset as an image folder: ``out/train/<digit>/*.png``, ``out/test/...`` and
    ``out/attributes.csv`` (its other labels, e.g. colour): the layout ``obfaudit audit`` reads."""
    import csv
    import io

    import numpy as np
    from PIL import Image

    from obfaudit._io import atomic_write_text

    if q.dataset not in DIGIT_DATASETS:
        raise ObfauditError(
            f"data export writes the digit datasets ({', '.join(DIGIT_DATASETS)}), not {q.dataset}"
        )
    out = check_output_dir(out)
    rows, counts = [], {}
    for split in ("train", "test"):
        ds = q.load(split=split)
        others = [k for k in ds.labels if k != "digit"]
        for i in range(len(ds)):
            digit = ds.classes["digit"][int(ds.labels["digit"][i])]
            rel = f"{split}/{digit}/{i:05d}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            pixels = (ds.x[i].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else np.ascontiguousarray(pixels)).save(
                out / rel
            )
            rows.append({"path": rel, **{k: ds.classes[k][int(ds.labels[k][i])] for k in others}})
        counts[split] = len(ds)
    buf = io.StringIO()
    fields = ["path", *[k for k in rows[0] if k != "path"]] if rows else ["path"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "attributes.csv", buf.getvalue())
    return {"folder": str(out), "images": counts, "attributes": fields[1:]}


# ----------------------------------------------------------------------------- train


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    """Settings of ``obfaudit train``."""

    arch: str = "cnn"
    """Architecture: cnn or mlp."""
    data: str | None = None
    """Dataset: mnist or colored-mnist (an ObfNet's default: the one its InfNet was trained on)."""
    bottleneck: int | None = None
    """ObfNet bottleneck width N (> 0)."""
    infnet: Path | None = None
    """Saved InfNet (.safetensors with its .json) the ObfNet trains through; its train/test split
    (its seed) is used."""
    infnet_dropout: bool = False
    """Keep InfNet's dropout active while training the ObfNet (the reference Keras behaviour)."""
    defence: str = "none"
    """How the ObfNet is defended: none, noise (sigma), dcor (NoPeek, lambda) or adversarial (lambda)."""
    strength: float = 0.0
    """The defence's strength: its weight lambda, or the noise scale sigma."""
    data_root: Path | None = None
    """Directory with full MNIST (MNIST/raw/*-ubyte); default: the embedded 5,000-image MNIST subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    out: Path = Path(".")
    """Directory for the saved model."""
    train: TrainConfig = field(default_factory=TrainConfig)


def _splits(job: TrainJob, dataset: str, seed: int):
    from obfaudit.data import load_dataset

    kw = {"seed": seed, "data_root": job.data_root, "download": job.download}
    return load_dataset(dataset, split="train", **kw), load_dataset(dataset, split="test", **kw)


def train_infnet(job: TrainJob) -> dict:
    """Train an InfNet on the clean digit task and save it."""
    from obfaudit.experiments.steps import fit_infnet
    from obfaudit.models import model_id, save_model

    resolve_device(job.train.device)
    check_output_dir(job.out)
    dataset = job.data or "colored-mnist"
    train, test = _splits(job, dataset, job.train.seed)
    model, metrics = fit_infnet(job.arch, train, test, job.train)
    path = save_model(
        model,
        job.out / f"{model_id('infnet_' + job.arch)}-{dataset}",
        dataset=dataset,
        seed=job.train.seed,
        epochs=metrics["fit"]["epochs_run"],
        train_config=job.train.to_dict(),
        metrics=metrics,
    )
    return {"model": str(path), "dataset": dataset, "arch": job.arch, **metrics}


def train_obfnet(job: TrainJob) -> dict:
    """Train an ObfNet through a frozen InfNet on the InfNet's own split, and save it."""
    from obfaudit.defences import get_defence
    from obfaudit.experiments.steps import check_model_fits, fit_obfnet
    from obfaudit.models import load_model, model_id, read_sidecar, save_model

    resolve_device(job.train.device)
    if job.infnet is None or job.bottleneck is None:
        raise ObfauditError("train obfnet needs --infnet and --bottleneck")
    check_output_dir(job.out)
    info = read_sidecar(job.infnet, role="infnet")
    dataset = job.data or info.get("dataset")
    if dataset not in DIGIT_DATASETS:
        raise ObfauditError(f"--infnet {job.infnet} names no dataset; pass --data mnist|colored-mnist")
    # The InfNet's own split: with another seed, its training images would be in the test split.
    train, test = _splits(job, dataset, info.get("seed", job.train.seed))
    check_model_fits(info, train, what=f"--infnet {job.infnet}")
    if job.defence == "none" and job.strength:
        raise ObfauditError("--strength needs --defence (noise, dcor or adversarial)")
    defence = get_defence(job.defence, job.strength)
    infnet, _ = load_model(job.infnet, role="infnet")
    model, metrics = fit_obfnet(
        job.arch,
        job.bottleneck,
        infnet,
        train,
        test,
        job.train,
        infnet_dropout=job.infnet_dropout,
        defence=defence,
    )
    suffix = "" if defence.name == "none" else f"-{defence.label}"
    path = save_model(
        model,
        job.out / f"{model_id('obfnet_' + job.arch, bottleneck=job.bottleneck)}{suffix}-{dataset}",
        defence=defence.to_dict(),
        dataset=dataset,
        seed=job.train.seed,
        infnet=str(job.infnet),
        epochs=metrics["fit"]["epochs_run"],
        train_config=job.train.to_dict(),
        metrics=metrics,
    )
    return {"model": str(path), "dataset": dataset, "arch": job.arch, "bottleneck": job.bottleneck, **metrics}


# ----------------------------------------------------------------------------- obfuscate


@dataclass(frozen=True, kw_only=True)
class ObfuscateJob:
    """Settings of ``obfaudit obfuscate``."""

    obfnet: Path
    """Saved ObfNet (.safetensors with its .json)."""
    data: str | None = None
    """Dataset: mnist or colored-mnist (default: the one the ObfNet was trained on)."""
    n: int = 10
    """Number of test images."""
    seed: int = 0
    """Seeds the train/test split (use the ObfNet's to see its own test images)."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto."""
    data_root: Path | None = None
    """Directory with full MNIST (MNIST/raw/*-ubyte); default: the embedded 5,000-image MNIST subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    out: Path = Path(".")
    """Directory for the PNG (named after the ObfNet)."""


def obfuscate(job: ObfuscateJob) -> dict:
    """A PNG of test originals above their obfuscations."""
    from obfaudit.data import load_dataset
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.models import load_model
    from obfaudit.report.figures import image_rows
    from obfaudit.transforms import apply_transform

    device = str(resolve_device(job.device))
    figure = check_output_dir(job.out) / f"obfuscated-{Path(job.obfnet).with_suffix('').name}.png"
    model, info = load_model(job.obfnet, device=device, role="obfuscator")
    data = load_dataset(
        job.data or info.get("dataset", "colored-mnist"),
        split="test",
        seed=job.seed,
        n=job.n,
        data_root=job.data_root,
        download=job.download,
    )
    check_model_fits(info, data, what=f"--obfnet {job.obfnet}")
    z = apply_transform(model, data.x, device=device)
    image_rows(
        [data.x, z],
        figure,
        row_labels=["original", "obfuscated"],
        title=f"{info['arch']} {info.get('kwargs', {})} on {data.name}",
    )
    return {"figure": str(figure), "images": len(data)}


# ----------------------------------------------------------------------------- attack


@dataclass(frozen=True, kw_only=True)
class AttackRun:
    """Settings every command that trains attacks shares (``attack``, ``audit``)."""

    infnet: Path | None = None
    """A clean InfNet of the task, the judge that reads the task from reconstructions."""
    epochs: int = 15
    """Epochs of the attack networks trained on the training split (proxy-trained: a third, at least 1)."""
    n_train: int | None = None
    """Use only the first N training images."""
    n_test: int | None = None
    """Use only the first N test images."""
    n_proxy: int = 30_000
    """Images the adversary generates per built-in proxy (noisy, path)."""
    n_tsne: int = 1000
    """Test images the t-SNE embeds."""
    no_controls: bool = False
    """Skip the controls (identity, null and, for a saved model in audit, random weights)."""
    seed: int = 0
    """Seeds the split, the proxies, every attack network and the bootstrap."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto: where the transform, the attacks and the judges run."""
    data_root: Path | None = None
    """For MNIST data: a directory with full MNIST (MNIST/raw/*-ubyte) instead of the embedded subset."""
    out: Path = Path("audit")
    """Directory for the results (JSON, CSV) and the figures."""
    progress: bool = False
    """Show progress bars (the CLI sets it on a terminal)."""

    def train_configs(self, device: str) -> tuple[TrainConfig, TrainConfig]:
        """(server's, proxy-trained) attack training: the proxies are larger, a third of the epochs."""
        from dataclasses import replace

        base = TrainConfig(epochs=self.epochs, patience=2, progress=self.progress, device=device)
        return base, replace(base, epochs=max(1, self.epochs // 3), patience=1)


def proxy_bytes(n: int, copies: int = 3) -> int:
    """Memory of ``n`` generated 3x28x28 proxy images, counted as float32 ``copies`` times
    (the images, their transform, a training copy): an upper bound, the images are bytes."""
    return n * 3 * 28 * 28 * 4 * copies


@dataclass(frozen=True, kw_only=True)
class AttackJob(AttackRun):
    """Settings of ``obfaudit attack``."""

    attacks: tuple[str, ...]
    """Registered attacks to run (each under its own party)."""
    obfnet: Path | None = None
    """Saved ObfNet to audit (.safetensors with its .json)."""
    transform: str | None = None
    """Your own transform as MODULE:CALLABLE (a callable on image batches, or a factory with no
    arguments that returns one); the working directory is searched first."""
    control: str | None = None
    """Audit a control transform: identity or null."""
    data: str | None = None
    """Dataset: mnist or colored-mnist (default: the ObfNet's, else colored-mnist)."""
    tsne_backend: str = "opentsne"
    """t-SNE implementation: opentsne (the faster here) or sklearn."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""


def run_attacks(job: AttackJob, *, log=lambda message: None) -> dict:
    """Audit one transform (and the controls) with the chosen attacks; write JSON, CSV and figures."""

    from obfaudit.attacks import AuditConfig, attack_class, audit
    from obfaudit.data import load_dataset, load_proxy
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.models import load_model
    from obfaudit.records import Experiment, write_csv
    from obfaudit.transforms import load_transform

    device = str(resolve_device(job.device))
    for name in job.attacks:
        attack_class(name)
    check_output_dir(job.out)
    needs = {n for a in job.attacks for n in attack_class(a).needs}
    proxy_count = sum(f"proxy:{p}" in needs for p in ("noisy", "path"))
    # each proxy image (3x28x28) is held with its transform and a training copy
    check_fits_in_memory(proxy_count * proxy_bytes(job.n_proxy), f"--n-proxy {job.n_proxy}")
    subject = load_transform(obfnet=job.obfnet, transform=job.transform, control=job.control, device=device)
    dataset = job.data or subject.dataset or "colored-mnist"
    # A saved model's own split: another seed would put its training images in the test split.
    split_seed = subject.info.get("seed", job.seed) if subject.info else job.seed
    kw = {"seed": split_seed, "data_root": job.data_root, "download": job.download}
    train = load_dataset(dataset, split="train", n=job.n_train, **kw)
    test = load_dataset(dataset, split="test", n=job.n_test, **kw)
    if subject.info:
        check_model_fits(subject.info, test, what=f"--obfnet {job.obfnet}")
    proxies = {
        p: load_proxy(p, seed=job.seed + 1 + i, n=job.n_proxy)
        for i, p in enumerate(("noisy", "path"))
        if f"proxy:{p}" in needs
    }
    infnet = None
    if job.infnet:
        infnet, info = load_model(job.infnet, device=device, role="infnet")
        check_model_fits(info, test, what=f"--infnet {job.infnet}")
    train_config, proxy_config = job.train_configs(device)
    config = AuditConfig(
        attacks=job.attacks,
        train=train_config,
        proxy_train=proxy_config,
        tsne_points=job.n_tsne,
        tsne_backend=job.tsne_backend,
        seed=job.seed,
        device=device,
    )
    results = audit(
        subject.transform,
        subject=subject.name,
        controls=not job.no_controls,
        train=train,
        test=test,
        proxies=proxies,
        infnet=infnet,
        config=config,
        on_attack=lambda name: log(f"running {name}"),
    )
    if not any(r.records for r in results.values()):
        skipped = "; ".join(f"{a}: {why}" for a, why in results[subject.name].skipped.items())
        raise ObfauditError(f"no attack could run on {dataset}, so there is no verdict ({skipped})")
    records = [r for res in results.values() for r in res.records]
    exps = [
        Experiment.from_attack(
            r,
            id=f"{r.subject}/{r.attack}",
            kind="attack" if r.subject == subject.name else "control",
            dataset=dataset,
            attribute=config.attribute,
        )
        for r in records
    ]
    job.out.mkdir(parents=True, exist_ok=True)
    from dataclasses import asdict

    summary = {
        "subject": subject.name,
        "source": subject.source,
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(job).items()},
            "split_seed": split_seed,
            "command": sys.argv,
            "obfaudit": __version__,
        },
        "dataset": dataset,
        "n_train": len(train),
        "n_test": len(test),
        "verdicts": {name: res.verdict for name, res in results.items()},
        "skipped": {name: res.skipped for name, res in results.items() if res.skipped},
        "records": [r.to_dict() for r in records],
    }
    write_json(job.out / "attack.json", summary)
    write_csv(job.out / "attack.csv", exps)
    figures = _attack_figures(job.out, results[subject.name], records, config)
    return {
        **summary,
        "json": str(job.out / "attack.json"),
        "csv": str(job.out / "attack.csv"),
        "figures": figures,
    }


def _attack_figures(out: Path, subject, records, config) -> list[str]:
    """One figure per output kind of the subject's attacks."""
    from obfaudit.attacks.metrics import chance_level, compromise_threshold
    from obfaudit.report.figures import fa_bars, image_rows, tsne_figure

    written = []
    arts = subject.artifacts
    images = [r.attack for r in subject.records if r.output == "image"]
    if images:
        rows = [arts["originals"], arts["transformed"], *(arts[f"{a}/output"] for a in images)]
        path = out / "reconstructions.png"
        image_rows(
            rows,
            path,
            row_labels=["original", "transformed", *images],
            title=f"reconstructions of {subject.subject}",
        )
        written.append(str(path))
    for r in subject.records:
        if r.output == "embedding":
            path = out / f"{r.attack}.png"
            tsne_figure(
                arts[f"{r.attack}/output"].numpy(),
                arts[f"{r.attack}/labels/task"].numpy(),
                arts[f"{r.attack}/labels/attribute"].numpy(),
                path,
                title=f"{r.attack} (perplexity {config.perplexity:g}) of {subject.subject}-transformed "
                "test images",
            )
            written.append(str(path))
    scored = [r for r in records if r.output == "attribute"]
    if scored:
        k = round(1 / scored[0].metrics["chance"])
        path = out / "feature_accuracy.png"
        fa_bars(
            [
                {"subject": r.subject, "attack": r.attack, "feature_accuracy": r.metrics["feature_accuracy"]}
                for r in scored
            ],
            path,
            chance=chance_level(k),
            threshold=compromise_threshold(k),
            title=f"{config.attribute} feature accuracy",
        )
        written.append(str(path))
    return written


# ----------------------------------------------------------------------------- cost, report


@dataclass(frozen=True, kw_only=True)
class CostQuery:
    """Settings of ``obfaudit cost``."""

    input: tuple[int, int, int] = (3, 224, 224)
    """Input shape as HxWxC."""
    bottleneck: int = 512
    """ObfNet bottleneck N."""
    classes: int = 10
    """ResNet50 classes."""


def cost(q: CostQuery) -> dict:
    """Table 1 (parameters, FLOPs, size) for any input shape."""
    from obfaudit.cost import cost_table

    rows = cost_table(q.input, bottleneck=q.bottleneck, classes=q.classes)
    return {"input": list(q.input), "bottleneck": q.bottleneck, "rows": rows}


def rebuild_report(run_dir: Path) -> dict:
    """Rebuild results.json/csv, figures and report.html of a run directory from its stages."""
    from obfaudit._io import RunLock
    from obfaudit.report import write_outputs

    if not (run_dir / "stages").is_dir():
        raise ObfauditError(f"{run_dir} is not an obfaudit run directory (no stages/)")
    check_output_dir(run_dir, what="run directory")
    with RunLock(run_dir):
        out = write_outputs(run_dir)
    return {"report": str(run_dir / "report.html"), **out}


# ----------------------------------------------------------------------------- audit


@dataclass(frozen=True, kw_only=True)
class AuditJob(AttackRun):
    """Settings of ``obfaudit audit``."""

    transform: str
    """The transform under audit: identity or null (controls), a .onnx file, a saved obfaudit model, or
    MODULE:CALLABLE."""
    data: str = "colored-mnist"
    """colored-mnist, or a folder DIR with DIR/train/<class>/* and DIR/test/<class>/* images and
    DIR/attributes.csv."""
    attributes: Path | None = None
    """The attributes CSV of a data folder (default: DIR/attributes.csv): a path column relative to
    DIR, one column per attribute."""
    attribute: str | None = None
    """The sensitive attribute (default: colour on Colored-MNIST, else the CSV's first attribute column)."""
    size: int | None = None
    """Resize a folder's images to SIZE x SIZE (default: the first training image's size)."""
    proxy: tuple[str, ...] | None = None
    """The adversary's own data: noisy and/or path (built in, for colour), or a folder DIR with an
    attributes CSV (default: noisy path for colour, none otherwise)."""
    attacks: tuple[str, ...] | None = None
    """Registered attacks to run (default: every one whose needs the data meets)."""
    repeats: int = 1
    """Train each attack K times with seeds SEED..SEED+K-1 and report the spread."""
    traffic: Path | None = None
    """A capture from 'obfaudit tap' (or 'serve --log'): attack the tensors it holds instead of transforming
    the test images; the data and labels come from --edge-record."""
    edge_record: Path | None = None
    """The edge's run record (edge.json) of the captured traffic: which images were sent, and their labels."""
    executor: str = "serial"
    """serial (here, one after another) or ray: each subject and repeat as a Ray task, several at once
    (pip install 'obfaudit[ray]')."""
    address: str | None = None
    """With --executor ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine's
    cores)."""


def _audit_data(job: AuditJob, split_seed: int):
    """(train, test, attribute, task) of the job's data."""
    from obfaudit.data.select import load_job_data

    return load_job_data(job, seed=split_seed, n_train=job.n_train, n_test=job.n_test)


def _proxies(job: AuditJob, attribute: str, test) -> dict:
    from obfaudit.data import load_proxy
    from obfaudit.data.attributes import load_proxy_folder

    wanted = job.proxy if job.proxy is not None else (("noisy", "path") if attribute == "colour" else ())
    out = {}
    for i, p in enumerate(wanted):
        if p in ("noisy", "path"):
            if attribute != "colour" or test.shape != (3, 28, 28):
                raise ObfauditError(
                    f"--proxy {p} makes 28x28 colour images for the colour attribute; give a folder"
                )
            check_fits_in_memory(proxy_bytes(job.n_proxy), f"--n-proxy {job.n_proxy}")
            # the data's own order of the colour names (a folder's is alphabetical)
            out[p] = load_proxy(p, seed=job.seed + 1 + i, n=job.n_proxy).relabel(
                attribute, test.classes[attribute]
            )
        else:
            out["folder"] = load_proxy_folder(
                p,
                attribute=attribute,
                classes=test.classes[attribute],
                shape=test.shape,
                private=None if job.data == "colored-mnist" else job.data,
            )
    return out


def _baselines(test, attribute: str) -> dict:
    """What an attribute guess scores without looking: chance and the majority class."""
    from obfaudit.attacks.metrics import chance_level, compromise_threshold

    y = test.labels[attribute]
    k = len(test.classes[attribute])
    return {
        "attribute": attribute,
        "classes": list(test.classes[attribute]),
        "chance": chance_level(k),
        "majority_class": float(torch.bincount(y, minlength=k).max()) / len(y),
        "threshold": compromise_threshold(k),
    }


def _audit_one(shared: dict, name: str, transform, run: int | None, on_attack=None):
    """One subject's audit (all its repeats, or only ``run``) on the data in ``shared``."""
    from obfaudit.attacks import audit_transform

    return audit_transform(
        name,
        transform,
        train=shared["train"],
        test=shared["test"],
        proxies=shared["proxies"],
        infnet=shared["infnet"],
        attribute_judge=shared["judge"],
        config=shared["config"],
        on_attack=on_attack,
        traffic=shared["traffic"] if name == shared["subject"] else None,
        runs=None if run is None else [run],
    )


def _audit_on_ray(job: AuditJob, subjects: dict, shared: dict, log) -> dict:
    """Every (subject, repeat) as a Ray task; each subject's runs joined as one audit gives them."""
    from obfaudit.attacks.audit import join_runs
    from obfaudit.experiments.ray_executor import run_tasks

    units = [(name, r) for name in subjects for r in range(job.repeats)]
    log(f"auditing {len(subjects)} subjects x {job.repeats} repeats as {len(units)} Ray tasks")
    done = run_tasks(
        _audit_one,
        [(f"{name} (seed {job.seed + r})", (name, subjects[name], r)) for name, r in units],
        shared=shared,
        address=job.address,
        gpus=1.0 if str(job.device).startswith("cuda") else 0.0,
        log=log,
    )
    seeds = [job.seed + r for r in range(job.repeats)]
    return {
        name: join_runs([res for (n, _), res in zip(units, done, strict=True) if n == name], seeds)
        for name in subjects
    }


def run_audit(job: AuditJob, *, log=lambda message: None) -> dict:
    """Audit one transform on one dataset and sensitive attribute, with every applicable attack,
    the baselines and controls; write results.json/csv, figures and report.html."""
    import sys
    from dataclasses import asdict, replace

    from obfaudit._version import __version__
    from obfaudit.attacks import AuditConfig, attack_class, attack_names
    from obfaudit.attacks.audit import available_needs, differentiable
    from obfaudit.attacks.judge import train_attribute_judge
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.models import create_model, load_model
    from obfaudit.records import Experiment, overall_verdict, write_csv
    from obfaudit.report.audit import write_audit_report
    from obfaudit.transforms import CONTROLS, CheckedTransform, resolve_source
    from obfaudit.transforms.onnx import OnnxTransform

    device = str(resolve_device(job.device))
    if job.address and job.executor != "ray":
        raise ObfauditError("--address names a Ray cluster: use it with --executor ray")
    if job.executor == "ray":
        from obfaudit.experiments.ray_executor import import_ray

        import_ray()
    out = check_output_dir(job.out)
    for name in job.attacks or ():
        attack_class(name)
    subject = resolve_source(job.transform, device=device)
    # A saved model's own split: another seed would put its training images in the test split.
    split_seed = subject.info.get("seed", job.seed) if subject.info else job.seed
    view = None
    if job.traffic or job.edge_record:
        if not (job.traffic and job.edge_record):
            raise ObfauditError(
                "--traffic and --edge-record go together: the capture and the edge's record of it"
            )
        from obfaudit.serve.traffic import captured_view

        view = captured_view(job.traffic, job.edge_record, n_train=job.n_train)
        train, test, attribute, task = view.train, view.test, view.attribute, view.task
        split_seed = view.about["split_seed"]
    else:
        train, test, attribute, task = _audit_data(job, split_seed)
    if isinstance(subject.transform, OnnxTransform):
        subject.transform.check_input(test.shape)
    if subject.info:
        check_model_fits(subject.info, test, what=f"--transform {job.transform}")
    proxies = _proxies(job, attribute, test)
    grads = differentiable(CheckedTransform(subject.transform, subject.name), test.x[:2].to(device))
    available = available_needs(train, test, proxies, attribute, gradients=grads)
    if view is not None:  # only the attacks of the parties that saw this capture
        parties = view.about["parties"]
        for name in job.attacks or ():
            if str(attack_class(name).party) not in parties:
                raise ObfauditError(
                    f"--attack {name} is a {attack_class(name).party} attack; the {view.about['seen_by']} "
                    f"capture is seen by {', '.join(parties)}"
                )
        z = CheckedTransform(subject.transform, subject.name)(test.x[:2].to(device))
        if tuple(z.shape[1:]) != tuple(view.traffic.shape[1:]):
            raise ObfauditError(
                f"--transform {job.transform} sends {tuple(z.shape[1:])}, the capture holds "
                f"{tuple(view.traffic.shape[1:])}: not the transform of this traffic"
            )
    else:
        parties = ("server", "adversary", "third-party")
    attacks = job.attacks or tuple(
        a
        for a in attack_names()
        if not attack_class(a).unmet(available) and str(attack_class(a).party) in parties
    )
    unmet = {a: attack_class(a).unmet(available) for a in attacks}
    if all(unmet.values()):  # before any training: nothing could give a verdict
        why = "; ".join(f"{a}: needs {', '.join(u)}" for a, u in unmet.items()) or "no attack applies"
        raise ObfauditError(
            f"no attack can run on {subject.name} for {attribute!r}, so there is no verdict ({why})"
        )
    infnet = None
    if job.infnet:
        infnet, info = load_model(job.infnet, device=device, role="infnet")
        check_model_fits(info, test, what=f"--infnet {job.infnet}")
    train_config, proxy_config = job.train_configs(device)
    config = AuditConfig(
        attacks=attacks,
        attribute=attribute,
        task=task,
        train=train_config,
        proxy_train=proxy_config,
        tsne_points=min(job.n_tsne, len(test)),
        seed=job.seed,
        device=device,
        repeats=job.repeats,
    )
    log(f"training the attribute judge on clean {train.name} images ({attribute})")
    judge = train_attribute_judge(train, attribute, replace(config.train, seed=job.seed))
    subjects = {subject.name: subject.transform}
    if not job.no_controls and view is None:  # captured traffic has no controls: they were never sent
        subjects.update({name: make() for name, make in CONTROLS.items() if name != subject.name})
        if subject.info:  # the same architecture with random weights: what training added
            torch.manual_seed(job.seed + 7919)
            subjects["random-weights"] = create_model(subject.info["arch"], **subject.info.get("kwargs", {}))
    shared = {
        "train": train,
        "test": test,
        "proxies": proxies,
        "infnet": infnet,
        "judge": judge,
        "config": config,
        "subject": subject.name,
        "traffic": view.traffic if view is not None else None,
    }
    if job.executor == "ray":
        results = _audit_on_ray(job, subjects, shared, log)
    else:
        results = {}
        for name, transform in subjects.items():
            log(f"auditing {name}")
            results[name] = _audit_one(
                shared, name, transform, None, on_attack=lambda attack, n=name: log(f"{n}: {attack}")
            )
    main = results[subject.name]
    if not main.records:
        why = "; ".join(f"{a}: {w}" for a, w in main.skipped.items())
        raise ObfauditError(f"no attack could run on {subject.name}, so there is no verdict ({why})")
    exps = [
        Experiment.from_attack(
            r,
            id=f"{r.subject}/{r.attack}",
            kind="attack" if r.subject == subject.name else "control",
            dataset=test.source,
            attribute=attribute,
        )
        for res in results.values()
        for r in res.records
    ]
    settings = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(job).items()},
        "data_root": str(Path(job.data_root).resolve()) if job.data_root else None,
        "out": str(out.resolve()),
        "split_seed": split_seed,
        "attacks": list(attacks),
        "command": sys.argv,
        "obfaudit": __version__,
    }
    results_json = {
        "obfaudit_audit": 1,
        "subject": subject.name,
        "source": subject.source,
        "dataset": {
            "name": test.source,
            "train": len(train),
            "test": len(test),
            "shape": list(test.shape),
            "task": task,
        },
        "baselines": _baselines(test, attribute),
        "verdicts": {n: r.verdict for n, r in results.items()},
        "verdict": overall_verdict([r.verdict for r in main.records]),
        "skipped": {n: r.skipped for n, r in results.items() if r.skipped},
        "settings": settings,
        "experiments": [e.to_dict() for e in exps],
    }
    if view is not None:
        results_json["traffic"] = view.about
    write_json(out / "results.json", results_json)
    write_csv(out / "results.csv", exps)
    report = write_audit_report(out, results_json, exps, main)
    return {
        **{k: results_json[k] for k in ("subject", "verdict", "verdicts", "baselines", "skipped")},
        "records": [r.to_dict() for r in main.records],
        "report": str(report),
        "results": str(out / "results.json"),
    }
