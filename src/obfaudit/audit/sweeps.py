"""Sweeps as loops over one audit: a model cut at each of several nodes (``--split``), and the attacker
given K stolen pairs for each of several K (``--known-pairs``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from obfaudit._io import OutputPath, check_outputs
from obfaudit.audit.document import AuditReport
from obfaudit.audit.job import AuditJob
from obfaudit.audit.known_pairs import (
    KNOWN_PAIRS_ATTACKS,
    knowledge_reading,
    knowledge_rows,
    known_pairs_list,
)
from obfaudit.audit.resolve import task_data
from obfaudit.audit.run import run_audit
from obfaudit.audit.split import SplitReport
from obfaudit.errors import ObfauditError
from obfaudit.results import OnProgress, Progress, duration, quiet


def _sweep_progress(on_progress: OnProgress, after: int, pace: float | None) -> OnProgress:
    """A cut's progress lines, each saying what the sweep has left after this cut: ``after`` more cuts, at
    ``pace`` seconds each (the last cut's; deeper cuts usually cost more, so it is a floor)."""
    if not after:
        return on_progress
    more = f"{after} more cut{'s' if after > 1 else ''}"
    tail = f"; then {more}" + (f", at least {duration(after * pace)} at the last cut's pace" if pace else "")

    def report(progress: Progress) -> None:
        on_progress(replace(progress, message=progress.message + tail))

    return report


def audit_split(job: AuditJob, *, on_progress: OnProgress = quiet) -> SplitReport:
    """Cut the model of ``job.transform`` at each of ``job.split``, audit each cut into ``OUT/<node>``,
    and write the sweep's results, figure and report into ``job.out``."""
    from obfaudit._io import resolve_device, write_json
    from obfaudit.audit.split import cut_row, safe_node, split_nodes, task_utility
    from obfaudit.transforms import resolve_source
    from obfaudit.transforms.split import cut_module, cut_onnx, load_whole_model

    nodes = split_nodes(job.split or ())
    out = Path(job.out)
    check_outputs([OutputPath(out, "--out")])
    if not isinstance(job.transform, str):
        import torch

        if not isinstance(job.transform, torch.nn.Module):
            raise ObfauditError("--split cuts a model: give an nn.Module, MODULE:CALLABLE or an .onnx file")
        name, model, onnx_path = job.name or type(job.transform).__name__, job.transform, None
    elif job.transform.endswith(".onnx"):
        onnx_path = Path(job.transform)
        if not onnx_path.is_file():
            raise ObfauditError(f"{onnx_path}: ONNX model not found")
        name, model = job.name or onnx_path.stem, None
    else:
        name, model = load_whole_model(job.transform, seed=job.seed)
        name, onnx_path = job.name or name, None
    device = str(resolve_device(job.device))
    train, test, attribute, task = task_data(job, job.data or "colored-mnist", job.seed)
    cuts, audits = [], {}
    folders: dict[str, str] = {}
    last_cut: float | None = None  # seconds the last cut took: the pace of the cuts still to come
    for i, node in enumerate(nodes, 1):
        folder = safe_node(node)
        if folder in folders.values() or folder.strip(".") == "":  # two names made one, or a parent
            folder = f"{i}-{folder}"
        folders[node] = folder
        on_progress(Progress(f"cut {i}/{len(nodes)}: {name} at {node}", i - 1, len(nodes)))
        if onnx_path is not None:
            transform = str(cut_onnx(onnx_path, node, out / "cuts" / f"{folder}.onnx"))
        else:
            transform = cut_module(model, node, what=name)
        cut = replace(job, transform=transform, name=f"{name}@{node}", out=out / folder, split=None)
        rep = run_audit(cut, on_progress=_sweep_progress(on_progress, len(nodes) - i, last_cut))
        last_cut = rep.seconds
        runnable = (
            resolve_source(transform, device=device, seed=job.seed).transform
            if isinstance(transform, str)
            else transform
        )
        shape, utility = task_utility(runnable, train, test, task, seed=job.seed, device=device)
        audits[node] = rep
        cuts.append(cut_row(node, rep, shape, utility, folder=folder))
    baselines = next(iter(audits.values())).baselines.to_dict()
    screen = job.spent.about if job.spent.screen else None
    result = SplitReport(name, cuts, baselines, task, audits=audits, screen=screen)
    from obfaudit.report.split import write_split_report

    result.report = str(write_split_report(out, name, cuts, baselines, task, screen=screen))
    result.results = str(out / "split.json")
    write_json(out / "split.json", {"obfaudit_split": 1, **result.to_dict(), "settings": job.settings()})
    return result


def audit_known_pairs(job: AuditJob, *, on_progress: OnProgress = quiet) -> AuditReport:
    """The audit of ``job`` and one audit per k > 0 of its known pairs (only the known-pairs attacks,
    into ``OUT/known-pairs-K``); the main report gets the curve (:mod:`obfaudit.audit.known_pairs`)."""
    from obfaudit._io import write_json

    ks = known_pairs_list(job.known_pairs or ())
    out = Path(job.out)
    held = dict.fromkeys(KNOWN_PAIRS_ATTACKS, "run once per K of --known-pairs, into OUT/known-pairs-K")
    main = run_audit(
        replace(job, known_pairs=None, left_out={**(job.left_out or {}), **held}), on_progress=on_progress
    )
    by_k = {}
    for i, k in enumerate(k for k in ks if k > 0):
        on_progress(Progress(f"known pairs: k = {k} ({i + 1} of {sum(k > 0 for k in ks)})"))
        sub = replace(
            job,
            known_pairs=None,
            pairs_held=k,
            attacks=KNOWN_PAIRS_ATTACKS,
            name=main.subject,
            out=out / f"known-pairs-{k}",
            no_controls=True,
            fail_on=None,
            junit=None,
        )
        by_k[k] = run_audit(sub, on_progress=on_progress)
    n_train = main.document.dataset["train"]
    rows = knowledge_rows(main, by_k, n_train)
    b = main.baselines
    reading = knowledge_reading(rows, b.threshold)
    from obfaudit.report.figures import knowledge_curve

    figure = knowledge_curve(rows, out / "figures" / "knowledge.png", chance=b.chance, threshold=b.threshold)
    knowledge = {"rows": rows, "reading": reading, "figure": str(figure.relative_to(out))}
    write_json(out / "knowledge.json", {"obfaudit_knowledge": 1, "subject": main.subject, **knowledge})
    main.document.knowledge = knowledge
    main.write_report(out)  # again, with the curve
    return main


__all__ = ["audit_known_pairs", "audit_split"]
