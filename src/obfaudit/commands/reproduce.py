"""``obfaudit reproduce``: every experiment of the study, resumable, into one run directory."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from obfaudit.commands._base import Command, Interface, OnProgress, Progress, Result, json_option, pick, quiet
from obfaudit.commands._options import add, attack_names
from obfaudit.errors import ObfauditError
from obfaudit.experiments.executors import executor_names
from obfaudit.study.presets import PRESETS, RunSettings, get_preset


@dataclass
class Reproduction(Result):
    """What a reproduction ran and found."""

    run_dir: str
    report: str
    results: str
    stages_run: list[str]
    stages_skipped: list[str]
    seconds: float
    stage_seconds: dict[str, float]
    figures: list[str] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"done in {self.seconds:.0f} s: {len(self.stages_run)} stages run, "
            f"{len(self.stages_skipped)} already finished"
        ]
        for f in self.findings:
            state = {True: "reproduced", False: "NOT reproduced", None: "undecided"}[f["reproduced"]]
            lines.append(f"  [{state}] {f['claim']}")
        lines.append(f"report: {self.report}")
        return "\n".join(lines)


def reproduce(
    settings: RunSettings, *, progress_bars: bool = False, on_progress: OnProgress = quiet
) -> Reproduction:
    """Run (or resume) every stage of the preset into the run directory, then rebuild its report."""
    from obfaudit.study.reproduce import reproduce as run

    preset = get_preset(settings.preset)
    if (preset.full_mnist or preset.scaling) and settings.data_root is None:
        raise ObfauditError(f"preset {preset.name!r} needs --data-root DIR ({preset.description})")
    if settings.data_root is not None and not settings.data_root.is_dir() and not settings.download:
        raise ObfauditError(f"--data-root {settings.data_root} is not a directory")
    if settings.resnet_weights is not None and not settings.resnet_weights.is_file():
        raise ObfauditError(f"--resnet-weights {settings.resnet_weights}: file not found")
    summary = run(settings, progress=progress_bars, log=lambda line: on_progress(Progress(line)))
    return Reproduction(**summary)


def _describe() -> str:
    presets = "; ".join(f"{n}: {p.description}" for n, p in PRESETS.items())
    return (
        "Reproduce the study: InfNets, the ObfNet sweep, every attack, the controls, the cost table, figures "
        f"and report.html. Rerunning the same command skips finished stages. Presets: {presets}. "
        f"Attacks (--attack): {', '.join(attack_names())}."
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
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
        executor={"choices": executor_names()},
    )
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    return reproduce(pick(args, RunSettings), progress_bars=ui.progress_bars, on_progress=ui.on_progress)


COMMAND = Command(
    "reproduce", "reproduce every experiment of the study (resumable)", _describe, add_arguments, run
)
