"""Results of a run, rebuilt from its stage records: JSON, CSV, figures, findings, report."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from obfaudit._io import read_json, write_json
from obfaudit.attacks.metrics import chance_level, compromise_threshold
from obfaudit.data import COLOUR, COLOUR_NAMES
from obfaudit.records import read_records, write_csv
from obfaudit.report.collect import baselines_by_dataset, collect_experiments
from obfaudit.report.findings import findings
from obfaudit.report.selection import make_figures

#: The attribute of the study's Colored-MNIST and its number of values.
ATTRIBUTE, K_ATTRIBUTE = COLOUR, len(COLOUR_NAMES)
DATASET = "colored-mnist"


def study_of(records: dict) -> tuple[str, str, int]:
    """The dataset whose ObfNets the study's figures and findings show, its attribute and the number of
    values: Colored-MNIST's colour when the run has it, else the first controls' baselines (shapes' hue)."""
    found = list(baselines_by_dataset(records).items())
    if not found or any(ds == DATASET for ds, _ in found):
        return DATASET, ATTRIBUTE, K_ATTRIBUTE
    ds, b = sorted(found)[0]
    return ds, b["attribute"], len(b["classes"])


def write_outputs(run_dir: str | Path) -> dict:
    """Rebuild results.json, results.csv, the figures and report.html of a run directory."""
    from obfaudit.report.html import write_report

    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
    records = read_records(run_dir)
    left_out: list[str] = []
    exps = collect_experiments(records, config.get("stages"), left_out=left_out)
    dataset, attribute, k = study_of(records)
    thr, chance = compromise_threshold(k), chance_level(k)
    scaling = records["scaling"]["result"] if "scaling" in records else None
    figs = make_figures(
        run_dir, exps, chance=chance, threshold=thr, attribute=attribute, scaling=scaling, dataset=dataset
    )
    study = [e for e in exps if not e.defence]  # defended ObfNets have their own section
    from obfaudit.data import dataset_names, dataset_spec

    task = dataset_spec(dataset).task if dataset in dataset_names() else None
    found = findings(
        study, threshold=thr, chance=chance, attribute=attribute, dataset=dataset, task=task or "digit"
    )
    results = {
        "obfaudit_results": 2,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "dataset": dataset,
        "attribute": attribute,
        "threshold": thr,
        "chance": chance,
        "findings": [{**asdict(f), "reproduced": f.reproduced} for f in found],
        "figures": figs,
        "not_run": config.get("not_run", [])
        + [
            {
                "part": f"stage {name}",
                "reason": "its record could not be read; rerun reproduce to recompute it",
            }
            for name in left_out
        ],
        "experiments": [e.to_dict() for e in exps],
    }
    write_json(run_dir / "results.json", results)
    write_csv(run_dir / "results.csv", exps)
    write_report(run_dir, results, exps, found, records)
    return {"figures": [f"figures/{f}" for f in figs], "findings": results["findings"]}
