"""One audit run: resolve the job, plan its stages, run them on an executor (resumable, the controls
and the judge in the shared cache), assemble the document and write the report."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from obfaudit._io import OutputPath, check_outputs
from obfaudit.audit.document import AuditReport, assemble
from obfaudit.audit.job import AuditJob
from obfaudit.audit.resolve import ResolvedJob, resolve
from obfaudit.experiments.stages import StageState
from obfaudit.results import OnProgress, Progress, duration, quiet

if TYPE_CHECKING:
    from obfaudit.attacks.prepare import PreparedAudit
    from obfaudit.audit.plan import Auditors, AuditSubject
    from obfaudit.experiments.stages import Stage, StageEvent


def _auditors() -> Auditors:
    from obfaudit.audit.plan import Auditors  # (torch: not imported for the command line's --help)

    return Auditors()


@dataclass(kw_only=True)
class AuditContext:
    """What the stages of one audit share (:class:`obfaudit.audit.plan.AuditHost`). ``resolve`` resolves
    the job (in a Ray worker too, where the context arrives pickled without it)."""

    resolve: Callable[[], ResolvedJob]
    out: Path
    cache: Path
    """The cache shared by audits (the controls' and the judge's stages)."""
    progress: bool = False
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    """This audit (a Ray worker keeps one context per audit: another audit into the same folder,
    in the same Ray session, must not find this one's transform and data)."""
    loaded: ResolvedJob | None = field(default=None, repr=False)
    """The job once resolved (the caller passes its own; dropped when pickled: a worker resolves it)."""
    auditors: Auditors = field(default_factory=_auditors, repr=False)

    def cache_id(self) -> str:
        return f"audit:{self.run}"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "loaded": None, "auditors": _auditors()}

    @property
    def resolved(self) -> ResolvedJob:
        if self.loaded is None:
            self.loaded = self.resolve()
        return self.loaded

    def prepared_for(self, stage: Stage, inputs: Mapping[str, dict]) -> PreparedAudit:
        return self.resolved.prepared

    def subject_for(self, stage: Stage, inputs: Mapping[str, dict]) -> AuditSubject:
        name = stage.about["subject"]
        return next(s for s in self.resolved.subjects if s.name == name)


def run_audit(job: AuditJob, *, on_progress: OnProgress = quiet) -> AuditReport:
    """Audit one transform on one dataset and sensitive attribute: every applicable attack (or those
    asked for) under its party, the baselines and the controls; resumable into ``job.out``, whose
    results.json, results.csv, figures and report.html it writes.

    Args:
        job: the audit's settings (one audit: the sweeps of :mod:`obfaudit.audit.sweeps` loop over this).
        on_progress: receives a :class:`Progress` as each stage starts and ends.
    """
    from obfaudit._io import RunLock
    from obfaudit.audit.plan import collect_audit, plan_audit
    from obfaudit.experiments.executors import closing_executor, make_executor
    from obfaudit.records import Kind
    from obfaudit.report.collect import collect_experiments

    out = Path(job.out)
    check_outputs([OutputPath(out, "--out")])
    t0 = time.perf_counter()
    # (an executor may start its workers now, to load while this process prepares: stopped whatever happens)
    with closing_executor(make_executor(job.executor, address=job.address)) as executor, RunLock(out):
        ready = resolve(job)
        device = ready.prepared.config.device
        cache = Path(job.cache_dir()).resolve()
        stages = plan_audit(
            ready.prepared, ready.subjects, ready.dataset, cache=cache, gpu=str(device).startswith("cuda")
        )
        if any(s.store is not None for s in stages):  # only the controls and the judge live there
            check_outputs([OutputPath(cache, "--cache")])
        ctx = AuditContext(
            resolve=partial(resolve, job), out=out, cache=cache, progress=job.progress, loaded=ready
        )
        names = [s.name for s in ready.subjects]
        records = executor.run(stages, ctx, on_event=partial(_stage_progress, on_progress, stages, names))
        results = collect_audit(stages, records, out, names)
        judge = next((records[s.name]["result"] for s in stages if s.about.get("kind") == "judge"), None)
        # the rows as this audit planned them (a control's record in the cache may come from another audit)
        rows = collect_experiments(
            {s.name: {**records[s.name], "about": s.about} for s in stages if s.name in records},
            [s.name for s in stages],
        )
        exps = [e for e in rows if e.kind in (Kind.ATTACK, Kind.CONTROL)]
        result = assemble(job, ready, results, exps, out, judge)
        result.seconds = round(time.perf_counter() - t0, 1)
        result.write_report(out)
        if job.junit:
            from obfaudit.gate import write_junit

            result.junit = str(
                write_junit(job.junit, result.subject, result.parties, job.fail_on, report=result.report)
            )
    return result


def _stage_progress(
    on_progress: OnProgress, stages: list[Stage], subjects: list[str], event: StageEvent
) -> None:
    """One line per stage started, done or kept: which subject and attack, and the time left."""
    a = next(s.about for s in stages if s.name == event.stage)
    if "attack" in a:
        i = subjects.index(a["subject"]) + 1 if a["subject"] in subjects else 0
        what = f"subject {i} of {len(subjects)} ({a['subject']}), attack {a['attack']}"
    else:
        what = f"the {a['kind']} of {a.get('attribute')}"
    state = {
        StageState.RUNNING: "started",
        StageState.DONE: f"done in {event.seconds:.1f} s",
        StageState.SKIPPED: "kept from an earlier run",
    }[event.state]
    left = ""
    if event.left and event.done < event.total:  # the stages that will run, at the rate measured
        left = f"; about {duration(event.left)} left"
    if event.state is not StageState.RUNNING or event.running:
        on_progress(Progress(f"[{event.done}/{event.total}] {what}: {state}{left}", event.done, event.total))


__all__ = ["AuditContext", "run_audit"]
