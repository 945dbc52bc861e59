"""``obfaudit reproduce``: plan the preset's stages, run them (resumable), build the report.

The plan is in :mod:`.plan`, the executors and stage cache in :mod:`obfaudit.experiments.stages`; results,
figures and report.html are rebuilt by :mod:`obfaudit.report` from the stored records,
never by retraining.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import torch

from obfaudit._io import RunLock, check_output_dir, resolve_device, write_json
from obfaudit._version import __version__
from obfaudit.experiments.executors import closing_executor, make_executor
from obfaudit.experiments.stages import StageEvent, StageState
from obfaudit.study.context import RunContext, RunSettings, data_description
from obfaudit.study.plan import plan
from obfaudit.study.presets import Preset, get_preset

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def resolve_preset(settings: RunSettings) -> Preset:
    """The preset named in ``settings``, with the settings that override its fields."""
    overrides = {"infnet_dropout": True} if settings.infnet_dropout else {}
    return get_preset(settings.preset, **overrides)


def reproduce(
    settings: RunSettings,
    *,
    preset: Preset | None = None,
    progress: bool = False,
    log: Log = _quiet,
) -> dict:
    """Run (or resume) every stage of the preset into the run directory; rebuild the report.

    Args:
        settings: the run's settings.
        preset: a preset object to use instead of the one ``settings`` names (tests).
        progress: show progress bars while networks train.
        log: receives one line per stage as it finishes.

    Returns:
        A summary: the run directory, stages run and skipped, seconds per stage, the
        figures written and the study's findings.
    """

    preset = preset or resolve_preset(settings)
    resolve_device(settings.device)
    out = check_output_dir(settings.run_dir())
    stages, not_run = plan(preset, settings)
    with (
        closing_executor(make_executor(settings.executor, address=settings.address)) as executor,
        RunLock(out),
    ):
        return _run(settings, preset, out, stages, not_run, executor, progress=progress, log=log)


def _run(settings, preset, out, stages, not_run, executor, *, progress: bool, log: Log) -> dict:
    from obfaudit.report import write_outputs

    ctx = RunContext(settings=settings, preset=preset, out=out, progress=progress, log=log)
    t0 = time.perf_counter()
    has_digits = bool(preset.bottlenecks or preset.mnist_bottlenecks)
    config = {
        "preset": preset.to_dict(),
        "settings": asdict(replace(settings, out=out)),
        "seed": settings.seed,
        "device": settings.device,
        "data_root": settings.data_root,
        "data": data_description(preset, settings.data_root) if has_digits else None,
        "stages": [s.name for s in stages],
        "not_run": [asdict(n) for n in not_run],
        "command": sys.argv,
        "obfaudit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    write_json(out / "config.json", config)
    log(f"{len(stages)} stages; data: {config['data'] or 'image folder'}")
    ran, skipped, timings = [], [], {}

    def on_event(event: StageEvent) -> None:
        flow = f"; {event.running} running, {event.waiting} waiting" if event.running or event.waiting else ""
        if event.state is StageState.RUNNING:
            if event.running:  # an executor running several stages at once says when each starts
                log(f"[{event.done}/{event.total}{flow}] {event.stage}: started")
            return
        (ran if event.state is StageState.DONE else skipped).append(event.stage)
        timings[event.stage] = round(event.seconds, 2)
        state = "done" if event.state is StageState.DONE else "skipped (finished earlier)"
        log(f"[{event.done}/{event.total}{flow}] {event.stage}: {state} in {event.seconds:.1f} s")

    executor.run(stages, ctx, on_event=on_event)
    t = time.perf_counter()
    outputs = write_outputs(out)
    timings["report"] = round(time.perf_counter() - t, 2)
    log(f"results, figures and report: {timings['report']:.1f} s")
    return {
        "run_dir": str(out),
        "report": str(out / "report.html"),
        "results": str(out / "results.json"),
        "stages_run": ran,
        "stages_skipped": skipped,
        "seconds": round(time.perf_counter() - t0, 2),
        "stage_seconds": timings,
        **outputs,
    }
