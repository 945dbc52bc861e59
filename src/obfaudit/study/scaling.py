"""The scaling study at 224x224x3: cost table, ResNet50 InfNet, LightNet and DenseNet.

Images are fed to the obfuscators after ResNet preprocessing (ImageNet mean/std), as in
the study; the obfuscator's output goes to ResNet50 unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from obfaudit.cost import cost_table
from obfaudit.data import load_image_folder, resnet_preprocess
from obfaudit.experiments.stages import Resources, Stage
from obfaudit.models import create_model, save_model
from obfaudit.models.scaling import load_imagenet_weights
from obfaudit.report.figures import image_rows
from obfaudit.train import accuracy, fit, predict, train_obfnet

COST_SHAPE = (3, 224, 224)
COST_BOTTLENECK = 512
OBFUSCATORS = ("lightnet", "densenet")


class Preprocess(nn.Module):
    """ResNet preprocessing as a layer, so the edge pipeline is one module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resnet_preprocess(x)


class EdgePipeline(nn.Module):
    """What the edge device runs: preprocessing, then the obfuscator."""

    def __init__(self, obfuscator: nn.Module) -> None:
        super().__init__()
        self.pre = Preprocess()
        self.obfuscator = obfuscator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.obfuscator(self.pre(x))


def run_cost(ctx, stage: Stage, inputs) -> dict:
    return {"rows": cost_table(COST_SHAPE, bottleneck=COST_BOTTLENECK)}


def cost_stage() -> Stage:
    """Table 1 at 224x224x3 (models built on the meta device: seconds, no weights)."""
    return Stage(
        "cost",
        run_cost,
        settings={"input": COST_SHAPE, "bottleneck": COST_BOTTLENECK},
        about={"kind": "cost"},
        version=2,
        outputs=("rows",),
    )


def _resnet_forward(resnet: nn.Module):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return resnet(resnet_preprocess(x))

    return forward


def run_scaling(ctx, stage: Stage, inputs) -> dict:
    """Fine-tune ResNet50 on the image folder, then train LightNet and DenseNet through it."""
    ctx.auditors.clear()
    p = ctx.preset
    size = p.scaling_size
    ctx.log(f"loading the image folder {ctx.data_root} at {size}x{size}")
    train, test = (
        load_image_folder(
            ctx.data_root, split, n=n, size=size, seed=ctx.seed, as_uint8=True, progress=ctx.progress
        )
        for split, n in (("train", p.scaling_n_train), ("test", p.scaling_n_test))
    )
    classes = len(train.classes["class"])
    y_train, y_test = train.labels["class"], test.labels["class"]
    config = ctx.train_config(p.scaling_epochs, patience=p.attack_patience, batch_size=32)
    if len(train) < 50:  # a tiny folder (tests): no validation split to hold out
        config = replace(config, patience=None, val_fraction=0.0)
    torch.manual_seed(ctx.seed)
    resnet = create_model("resnet50", input_shape=(3, size, size), classes=classes)
    load_imagenet_weights(resnet, ctx.settings.resnet_weights, download=ctx.settings.download)
    resnet = resnet.to(memory_format=torch.channels_last)
    fit_r = fit(
        resnet,
        train.x,
        y_train,
        F.cross_entropy,
        replace(config, desc="resnet50"),
        forward=_resnet_forward(resnet),
        metric=accuracy,
    )
    clean = accuracy(predict(_resnet_forward(resnet), test.x, device=ctx.device, batch_size=64).cpu(), y_test)
    save_model(
        resnet.cpu(),
        ctx.models / "resnet50-imagefolder",
        dataset="imagefolder",
        metrics={"clean_top1": clean},
    )
    out = {
        "images": {"train": len(train), "test": len(test)},
        "size": size,
        "classes": classes,
        "resnet50": {"clean_top1": clean, "fit": fit_r.to_dict()},
        "obfuscators": {},
    }
    rows = [test.x[:8].float() / 255]
    labels = ["original"]
    for name in OBFUSCATORS:
        torch.manual_seed(ctx.seed)
        obf = create_model(name, input_shape=(3, size, size))
        edge = EdgePipeline(obf)
        r = train_obfnet(edge, resnet, train.x, y_train, replace(config, desc=name))
        obf_acc = accuracy(
            predict(lambda x, e=edge: resnet(e(x)), test.x, device=ctx.device, batch_size=64).cpu(),
            y_test,
        )
        save_model(
            obf.cpu(),
            ctx.models / f"{name}-imagefolder",
            dataset="imagefolder",
            metrics={"obfuscated_top1": obf_acc},
        )
        out["obfuscators"][name] = {
            "obfuscated_top1": obf_acc,
            "clean_top1": clean,
            "params": sum(q.numel() for q in obf.parameters()),
            "fit": r.to_dict(),
        }
        rows.append(predict(edge, test.x[:8], device="cpu"))
        labels.append(f"{name} output")
    figure = ctx.out / "figures" / "fig12_scaling_obfuscated.png"
    image_rows(
        rows,
        figure,
        row_labels=labels,
        cell=1.2,
        title=f"fig12: originals and obfuscated images ({size}x{size}, ResNet-preprocessed input)",
    )
    out["figure"] = str(figure.relative_to(ctx.out))
    return out


def _scaling_ok(ctx, record: dict) -> bool:
    return (ctx.out / record["result"].get("figure", "-")).exists() and all(
        (ctx.models / f"{n}-imagefolder.safetensors").exists() for n in OBFUSCATORS
    )


def scaling_stage(preset, settings) -> Stage:
    """The 224x224x3 study on the image folder of ``settings.data_root``."""
    return Stage(
        "scaling",
        run_scaling,
        settings={
            "root": str(settings.data_root),
            "size": preset.scaling_size,
            "epochs": preset.scaling_epochs,
            "seed": settings.seed,
            "n_train": preset.scaling_n_train,
            "n_test": preset.scaling_n_test,
            "precision": preset.precision,
            "resnet_weights": str(settings.resnet_weights) if settings.resnet_weights else None,
        },
        about={"kind": "scaling"},
        version=2,
        outputs=("figure", "obfuscators", "resnet50", "images", "size", "classes"),
        valid=_scaling_ok,
        resources=Resources(cpus=1, gpus=1 if settings.device.startswith("cuda") else 0),
    )


__all__ = ["EdgePipeline", "cost_stage", "scaling_stage"]
