"""The audit engine: one audit of a transform, and the sweeps that loop over it.

- :mod:`~obfaudit.audit.job`: the job and its budgets (importable without torch: the command line's
  options and ``--help`` come from its field docstrings);
- :mod:`~obfaudit.audit.resolve`: the job resolved into data, the transform, its controls and the
  attacks that run (its data and settings a :class:`~obfaudit.attacks.prepare.PreparedAudit`);
- :mod:`~obfaudit.audit.plan`: the judge and attack stages (one attack on one subject each), planned
  for an audit and, by :mod:`obfaudit.study.plan`, for each ObfNet and control of the reproduction;
- :mod:`~obfaudit.audit.run`: the plan run on an executor, resumable, then assembled into the
  result (:mod:`~obfaudit.audit.document`) and written;
- :mod:`~obfaudit.audit.sweeps`: a model cut at several nodes (rows in :mod:`~obfaudit.audit.split`)
  and an attacker given K stolen pairs (rows in :mod:`~obfaudit.audit.known_pairs`).

From Python::

    from obfaudit.audit import AuditJob, audit

    report = audit(AuditJob(transform=my_transform, data="colored-mnist", out=Path("audit-mine")))
    print(report.verdict, [(r.attack, r.party, r.metrics.interval()) for r in report.records])

``obfaudit audit`` (:mod:`obfaudit.commands.audit`) parses its options into an :class:`AuditJob` and
calls :func:`audit` or :func:`audit_split`.
"""

from __future__ import annotations

from obfaudit.audit.document import AuditReport
from obfaudit.audit.job import AuditJob
from obfaudit.audit.run import run_audit
from obfaudit.audit.split import SplitReport
from obfaudit.audit.sweeps import audit_known_pairs, audit_split
from obfaudit.errors import ObfauditError
from obfaudit.results import OnProgress, quiet


def audit(job: AuditJob, *, on_progress: OnProgress = quiet) -> AuditReport:
    """Audit ``job``'s transform (:func:`~obfaudit.audit.run.run_audit`), or with ``job.known_pairs``, sweep
    the attacker's known pairs around it (:func:`~obfaudit.audit.sweeps.audit_known_pairs`): the main
    audit's report, with the curve. A ``job.split`` is a sweep of cuts: :func:`audit_split`."""
    if job.split:
        raise ObfauditError("an audit with --split is a sweep of cuts: call obfaudit.audit.audit_split")
    if job.known_pairs:
        return audit_known_pairs(job, on_progress=on_progress)
    return run_audit(job, on_progress=on_progress)


__all__ = ["AuditJob", "AuditReport", "SplitReport", "audit", "audit_split"]
