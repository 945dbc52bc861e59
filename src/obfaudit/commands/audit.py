"""``obfaudit audit``: any transform on any data and sensitive attribute, with intervals.

The options are :class:`obfaudit.audit.AuditJob`'s fields; the audit itself is :mod:`obfaudit.audit`
(one audit, or a sweep of cuts with ``--split``, or of the attacker's known pairs with ``--known-pairs``).
"""

from __future__ import annotations

import argparse

from obfaudit.audit.job import BUDGET_NAMES, AuditJob
from obfaudit.commands._base import Command, Interface, Result, json_option, pick
from obfaudit.commands._options import add, attacks_listing
from obfaudit.errors import ObfauditError
from obfaudit.experiments.executors import executor_names
from obfaudit.gate import FAIL_ON
from obfaudit.train_config import ATTACK_NETS

AUDIT_OPTIONS = [
    "transform",
    "data",
    "attributes",
    "attribute",
    "size",
    "proxy",
    "attacks",
    "repeats",
    "infnet",
    "budget",
    "epochs",
    "min_steps",
    "split",
    "known_pairs",
    "attack_nets",
    "traffic",
    "edge_record",
]
RUN_OPTIONS = [
    "n_train",
    "n_test",
    "n_proxy",
    "n_tsne",
    "tsne_backend",
    "no_controls",
    "executor",
    "address",
    "seed",
    "device",
    "data_root",
    "download",
    "cache",
    "out",
    "fail_on",
    "junit",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(
        p,
        AuditJob,
        AUDIT_OPTIONS,
        transform={"required": True, "metavar": "SRC", "type": str},
        attack_nets={"choices": ATTACK_NETS},
        budget={"choices": BUDGET_NAMES},
        split={"metavar": "NODE[,NODE...]"},
        known_pairs={"metavar": "K[,K...]"},
        data={"metavar": "colored-mnist|DIR"},
        proxy={"metavar": "noisy|path|DIR"},
        traffic={"metavar": "CAPTURE"},
        edge_record={"metavar": "EDGE_JSON"},
    )
    add(
        p,
        AuditJob,
        RUN_OPTIONS,
        executor={"choices": executor_names()},
        address={"metavar": "auto|HOST:PORT"},
        out={"required": True},
        fail_on={"choices": FAIL_ON},
        junit={"metavar": "FILE"},
    )
    json_option(p)


def _describe() -> str:
    return (
        "Audit one transform (a control, an ONNX file, a saved model or MODULE:CALLABLE) on Colored-MNIST or "
        "your own image folder and sensitive attribute: every applicable registered attack under its party, "
        "95% bootstrap intervals, three-way verdicts, the chance and majority baselines, and the identity, "
        "null, same-shape and random-weights controls. Writes results.json/csv, figures and report.html; "
        f"rerunning into the same --out resumes. Attacks: {attacks_listing()}."
    )


def run(args: argparse.Namespace, ui: Interface) -> Result:
    from obfaudit.audit import audit, audit_split
    from obfaudit.audit.known_pairs import known_pairs_list

    job = pick(args, AuditJob, progress=ui.progress_bars)
    if job.known_pairs:
        known_pairs_list(job.known_pairs)  # a bad entry is one line, before any work
        if job.split:
            raise ObfauditError("--known-pairs and --split are two sweeps: run one at a time")
    if job.split and (job.fail_on or job.junit):
        raise ObfauditError(
            "--fail-on and --junit gate one audit, not a --split sweep: gate each cut's audit"
        )
    if job.split:
        return audit_split(job, on_progress=ui.on_progress)
    return audit(job, on_progress=ui.on_progress)


COMMAND = Command(
    "audit",
    "audit any transform on your data and sensitive attribute, with intervals",
    _describe,
    add_arguments,
    run,
)
