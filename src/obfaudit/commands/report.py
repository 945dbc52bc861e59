"""``obfaudit report RUN_DIR``: rebuild a run's results, figures and report.html from its stages."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from obfaudit.commands._base import Command, Interface, OutputPath, Result, check_outputs, json_option
from obfaudit.errors import ObfauditError


@dataclass
class RebuiltReport(Result):
    report: str
    figures: list[str] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        return f"rebuilt {self.report} with {len(self.figures)} figures"


def rebuild_report(run_dir: Path) -> RebuiltReport:
    """Rebuild results.json/csv, figures and report.html of a run directory from its stages."""
    from obfaudit._io import RunLock
    from obfaudit.report import write_outputs

    if not (Path(run_dir) / "stages").is_dir():
        raise ObfauditError(f"{run_dir} is not an obfaudit run directory (no stages/)")
    if not (Path(run_dir) / "config.json").is_file():
        raise ObfauditError(
            f"{run_dir} is not a reproduction's run directory (no config.json); an audit's report is "
            "rebuilt by running the same 'obfaudit audit' again (its finished attacks are kept)"
        )
    check_outputs([OutputPath(Path(run_dir), "run directory")])
    with RunLock(run_dir):
        out = write_outputs(run_dir)
    return RebuiltReport(str(Path(run_dir) / "report.html"), out["figures"], out["findings"])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a directory written by obfaudit reproduce")
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    return rebuild_report(args.run_dir)


COMMAND = Command(
    "report",
    "rebuild results, figures and report.html of a run directory",
    "Rebuild results.json, results.csv, figures and report.html from a run's stored stages (nothing is "
    "retrained).",
    add_arguments,
    run,
)
