"""``obfaudit audit``: any transform on any data and sensitive attribute, with intervals.

The audit is prepared in :mod:`obfaudit.attacks.prepare` and runs as stages
(:mod:`obfaudit.experiments.audit_plan`): one per attack on the subject and on each control,
resumable, the controls and the judge kept in a cache shared by audits. From Python::

    from obfaudit.commands.audit import AuditJob, audit

    report = audit(AuditJob(transform=my_transform, data="colored-mnist", out=Path("audit-mine")))
    print(report.verdict, [(r.attack, r.party, r.metrics.interval()) for r in report.records])
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obfaudit.commands._base import (
    Command,
    Interface,
    OnProgress,
    OutputPath,
    Progress,
    Result,
    check_outputs,
    json_option,
    pick,
    quiet,
)
from obfaudit.commands._options import add, attacks_listing
from obfaudit.errors import ObfauditError
from obfaudit.experiments.executors import executor_names
from obfaudit.gate import FAIL_ON
from obfaudit.train_config import ATTACK_NETS

#: ``--budget`` (kept here so that building the parser imports no torch; checked against
#: :data:`obfaudit.attacks.prepare.BUDGETS` by the tests).
BUDGET_NAMES = ("standard", "quick")
#: The settings a budget gives unless the job gives them itself.
BUDGET_FIELDS = ("epochs", "min_steps", "n_proxy", "n_tsne")

if TYPE_CHECKING:
    from obfaudit.attacks import AuditResult
    from obfaudit.attacks.calibration import Calibration
    from obfaudit.attacks.prepare import Baselines
    from obfaudit.commands.split import SplitReport
    from obfaudit.experiments.audit_plan import AuditPieces
    from obfaudit.records import AttackRecord, Experiment
    from obfaudit.threat import Verdict


def default_cache() -> Path:
    """Where audits keep what other audits can reuse: $OBFAUDIT_CACHE, else $XDG_CACHE_HOME/obfaudit,
    else ~/.cache/obfaudit."""
    import os

    if os.environ.get("OBFAUDIT_CACHE"):
        return Path(os.environ["OBFAUDIT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "obfaudit"
    try:
        return Path.home() / ".cache" / "obfaudit"
    except RuntimeError:  # no home directory (some containers)
        raise ObfauditError(
            "no home directory for the audits' cache: give --cache DIR or $OBFAUDIT_CACHE"
        ) from None


@dataclass(frozen=True, kw_only=True)
class AuditJob:
    """Settings of ``obfaudit audit``."""

    transform: str | Callable
    """The transform under audit: identity or null (controls), a .onnx file, a saved obfaudit model, or
    MODULE:CALLABLE (from Python: the callable itself)."""
    name: str | None = None
    """The subject's name in the results (default: the model's file name, or the callable's name)."""
    data: str | None = None
    """colored-mnist (default, or the saved model's own dataset), or a folder DIR with DIR/train/<class>/* and
    DIR/test/<class>/* images and DIR/attributes.csv."""
    attributes: Path | None = None
    """The attributes CSV of a data folder (default: DIR/attributes.csv): a path column relative to
    DIR, one column per attribute."""
    attribute: str | None = None
    """The sensitive attribute (default: colour on Colored-MNIST, else the CSV's first attribute column)."""
    size: int | None = None
    """Resize a folder's images to SIZE x SIZE (default: the first training image's size)."""
    proxy: tuple[str, ...] | None = None
    """The adversary's own data: noisy and/or path (built in, for colour), or a folder DIR with an
    attributes CSV (default: noisy path for colour, none otherwise)."""
    attacks: tuple[str, ...] | None = None
    """Registered attacks to run (default: every one whose needs the data meets)."""
    repeats: int = 1
    """Train each attack K times with seeds SEED..SEED+K-1 and report the spread."""
    infnet: Path | None = None
    """A clean InfNet of the task, the judge that reads the task from reconstructions."""
    budget: str = "standard"
    """standard (every applicable attack, fully trained) or quick: a screen of about a minute on a small
    folder (probes, attribute classifiers and decoders at low resolution, briefly trained) that can find a
    leak, never rule one out: it says compromised or inconclusive, never not compromised."""
    epochs: int | None = None
    """Epochs of the attack networks trained on the training split (proxy-trained: a third, at least 1);
    more on small data (--min-steps), with early stopping on a 10% hold-out (default: 15; quick: 5)."""
    min_steps: int | None = None
    """Each attack network trains for at least this many optimiser steps, however few the images (its epoch
    cap rises, up to 400 epochs; early stopping still ends it); 0: the epochs as given (default: 1000;
    quick: 250)."""
    split: tuple[str, ...] | None = None
    """Cut the model of --transform (MODULE:CALLABLE returning an nn.Module, or an .onnx file) at each
    node (a module or torch.fx node name such as layer1, or an ONNX tensor name) and audit each cut:
    leakage against depth, the bytes each cut sends, the task still readable there."""
    attack_nets: str = "auto"
    """The attack networks: auto (convolutional for spatial tensors above 3x32x32 values, the study's MLPs
    below), conv (convolutional for every spatial tensor) or mlp (the study's MLPs everywhere)."""
    n_train: int | None = None
    """Use only the first N training images."""
    n_test: int | None = None
    """Use only the first N test images."""
    n_proxy: int | None = None
    """Images the adversary generates per built-in proxy (noisy, path) (default: 30,000; quick: 5,000)."""
    n_tsne: int | None = None
    """Test images the t-SNE embeds (default: 1000; quick: 500)."""
    tsne_backend: str = "opentsne"
    """t-SNE implementation: opentsne (the faster here) or sklearn."""
    no_controls: bool = False
    """Skip the controls (identity, null and, for a saved model, random weights)."""
    traffic: Path | None = None
    """A capture from 'obfaudit tap' (or 'serve --log'): attack the tensors it holds instead of transforming
    the test images; the data and labels come from --edge-record."""
    edge_record: Path | None = None
    """The edge's run record (edge.json) of the captured traffic: which images were sent, and their labels."""
    executor: str = "processes"
    """processes (stages side by side in worker processes, one per CPU up to 4, each on its share of the
    cores; $OBFAUDIT_WORKERS sets how many), serial (one stage after another in this process, on every
    core) or ray (stages as Ray tasks, several at once; pip install 'obfaudit[ray]')."""
    address: str | None = None
    """With --executor ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine's
    cores)."""
    seed: int = 0
    """Seeds the split, the proxies, every attack network and the bootstrap."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto: where the transform, the attacks and the judges run."""
    data_root: Path | None = None
    """For MNIST data: a directory with full MNIST (MNIST/raw/*-ubyte) instead of the embedded subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    out: Path = Path("audit")
    """Directory for the results (JSON, CSV), the figures and report.html; rerunning into it resumes."""
    known_pairs: tuple[str, ...] | None = None
    """How much the attacker must know: K[,K...] numbers of private (image, sent tensor) pairs, drawn from the
    training split, that an adversary holds; each K is audited with the known-pairs attacks into
    OUT/known-pairs-K, and the report draws the worst case against K (0: the proxy-only eavesdropper)."""
    pairs_held: int = 0
    """(Set by the --known-pairs sweep) the pairs the adversary of this audit holds."""
    fail_on: str | None = None
    """A gate for CI: after writing everything, exit with status 3 when any party's verdict is at or
    beyond this level: compromised (a leak its interval proves) or inconclusive (a leak not ruled out)."""
    junit: Path | None = None
    """Also write a JUnit XML file here, one test case per party, failed when its verdict reaches
    --fail-on (compromised without it), for CI systems to display."""
    cache: Path | None = None
    """Where the controls and the judge are kept for other audits of the same data and settings
    (default: $OBFAUDIT_CACHE, else $XDG_CACHE_HOME/obfaudit or ~/.cache/obfaudit)."""
    progress: bool = False
    """Show progress bars (the CLI sets it on a terminal)."""
    left_out: dict[str, str] | None = None
    """Attacks left out of the default set, with why (a split sweep leaves out the gradient attacks);
    named with --attack, they run."""

    def __post_init__(self) -> None:
        from obfaudit.attacks.prepare import BUDGETS

        if self.budget not in BUDGETS:
            raise ObfauditError(f"--budget {self.budget}: use one of {', '.join(BUDGETS)}")

    @property
    def spent(self):
        """The :class:`~obfaudit.attacks.prepare.AuditBudget` of :attr:`budget`, with what the job sets
        itself (epochs, min_steps, n_proxy, n_tsne) in place of the budget's (the fields stay None
        when not given, so that ``replace(job, budget=...)`` takes the other budget's)."""
        from obfaudit.attacks.prepare import BUDGETS

        given = {name: getattr(self, name) for name in BUDGET_FIELDS if getattr(self, name) is not None}
        return replace(BUDGETS[self.budget], **given)

    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache is not None else default_cache()

    def settings(self) -> dict:
        """The job as plain values (a callable by its name; what the budget sets, as it sets it), for
        results.json."""
        out: dict[str, Any] = {}
        spent = self.spent
        for f in fields(self):
            v = getattr(spent, f.name) if f.name in BUDGET_FIELDS else getattr(self, f.name)
            if callable(v) and not isinstance(v, str | Path):
                v = f"{getattr(v, '__module__', '?')}:{getattr(v, '__qualname__', type(v).__name__)}"
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out


# ----------------------------------------------------------------------------- preparation


@dataclass
class PreparedJob:
    """An audit job resolved: the pieces to plan, and what the results say about where they came from."""

    pieces: AuditPieces
    subject: Any
    """The loaded transform (:class:`obfaudit.transforms.LoadedTransform`)."""
    split_seed: int
    dataset: str
    traffic: dict | None = None
    """What a capture held (audits of traffic)."""
    not_run: dict[str, str] = field(default_factory=dict)
    """Registered attacks left out of the audit, and why."""
    weaker: dict[str, str] = field(default_factory=dict)
    """The white-box inversions that did not run because the transform passes no gradients or the audit
    left them out (a screen), and why: then its verdict rests on weaker attacks."""


def _task_data(job: AuditJob, dataset: str, seed: int):
    """(train, test, attribute, task) of ``dataset`` as ``job`` asks for them."""
    from obfaudit.data.select import load_task_data

    return load_task_data(
        dataset,
        seed=seed,
        data_root=job.data_root,
        attributes=job.attributes,
        size=job.size,
        attribute=job.attribute,
        n_train=job.n_train,
        n_test=job.n_test,
        download=job.download,
    )


def _subject(job: AuditJob, device: str):
    from obfaudit.transforms import LoadedTransform, resolve_source

    if isinstance(job.transform, str):
        loaded = resolve_source(job.transform, device=device, seed=job.seed)
    elif callable(job.transform):
        name = getattr(job.transform, "__name__", None) or type(job.transform).__name__
        loaded = LoadedTransform(name, job.transform, "python")
    else:
        raise ObfauditError(f"transform {job.transform!r}: give a callable or a source string")
    if job.name:
        from obfaudit.transforms import CONTROLS
        from obfaudit.transforms.shaped import SAME_SHAPE

        if job.name in (*CONTROLS, SAME_SHAPE) and loaded.source != job.name:
            raise ObfauditError(f"--name {job.name}: the name of a control; give the transform another name")
        loaded.name = job.name
    return loaded


def prepare(job: AuditJob) -> PreparedJob:
    """Load the data (or the capture), the transform, the proxies and the InfNet; choose the attacks;
    list the subjects (the transform, then its controls)."""
    from obfaudit._io import resolve_device
    from obfaudit.attacks import attack_class
    from obfaudit.attacks.prepare import (
        PreparedAudit,
        audit_config,
        control_transforms,
        make_proxies,
    )
    from obfaudit.data import dataset_names
    from obfaudit.experiments.audit_plan import AuditPieces, AuditSubject
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.models import Role, load_model
    from obfaudit.threat import PARTIES, Party
    from obfaudit.transforms import CheckedTransform
    from obfaudit.transforms.onnx import OnnxTransform

    device = str(resolve_device(job.device))
    for name in job.attacks or ():
        attack_class(name)
    subject = _subject(job, device)
    # A saved model's own split: another seed would put its training images in the test split.
    split_seed = subject.info.get("seed", job.seed) if subject.info else job.seed
    view = None
    if job.traffic or job.edge_record:
        if not (job.traffic and job.edge_record):
            raise ObfauditError(
                "--traffic and --edge-record go together: the capture and the edge's record of it"
            )
        from obfaudit.serve.traffic import captured_view

        view = captured_view(job.traffic, job.edge_record, n_train=job.n_train)
        train, test, attribute, task = view.train, view.test, view.attribute, view.task
        split_seed = view.about["split_seed"]
        dataset = view.about.get("dataset") or test.source
    else:
        own = subject.dataset if subject.dataset in dataset_names() else None
        dataset = job.data or own or "colored-mnist"
        train, test, attribute, task = _task_data(job, dataset, split_seed)
        dataset = test.source
    if isinstance(subject.transform, OnnxTransform):
        subject.transform.check_input(test.shape)
        subject.transform.differentiate(test.x[:64])  # the white-box attacks' way through the graph
    if subject.info:
        check_model_fits(subject.info, test, what=f"--transform {job.transform}")
    needs_proxies = job.attacks is None or any(
        any(n.kind == "proxy" for n in attack_class(a).needs) for a in job.attacks
    )
    registered = dataset in dataset_names()
    proxies = (
        make_proxies(
            job.proxy,
            attribute=attribute,
            test=test,
            seed=job.seed,
            n=job.spent.n_proxy,
            private=None if registered else job.data,
        )
        if needs_proxies
        else {}
    )
    infnet = None
    if job.infnet:
        infnet, info = load_model(job.infnet, device=device, role=Role.INFNET)
        check_model_fits(info, test, what=f"--infnet {job.infnet}")
    parties = tuple(Party(p) for p in view.about["parties"]) if view is not None else PARTIES
    spent = job.spent
    budget = spent.attack_budget(job.attack_nets)

    def configured(attacks: tuple[str, ...]) -> PreparedAudit:
        config = audit_config(
            attacks,
            attribute=attribute,
            task=task,
            budget=budget,
            seed=job.seed,
            device=device,
            tsne_points=min(spent.n_tsne, len(test)),
            tsne_backend=job.tsne_backend,
            repeats=job.repeats,
            progress=job.progress,
            known_pairs=job.pairs_held,
        )
        traffic = view.traffic if view is not None else None
        return PreparedAudit(train, test, attribute, task, proxies, config, infnet, traffic, parties)

    prepared = configured(())
    available = prepared.available(subject.transform)
    if view is not None:
        z = CheckedTransform(subject.transform, subject.name)(test.x[:2].to(device))
        if tuple(z.shape[1:]) != tuple(view.traffic.shape[1:]):
            raise ObfauditError(
                f"--transform {job.transform} sends {tuple(z.shape[1:])}, the capture holds "
                f"{tuple(view.traffic.shape[1:])}: not the transform of this traffic"
            )
    from obfaudit.threat import GRADIENTS

    graph = isinstance(subject.transform, OnnxTransform) and not subject.transform.differentiable
    attacks, not_run = prepared.choose_attacks(
        job.attacks, available, subject.name, no_gradients=subject.transform.gradients if graph else None
    )
    left_out = dict(job.left_out or {})
    if job.spent.screen:  # the caller's own reasons stand (a split sweep's)
        screened = {a: SCREEN_LEAVES_OUT for a in attacks if not attack_class(a).screening}
        left_out = {**screened, **left_out}
    if job.attacks is None and left_out:  # attacks the caller leaves out unless asked for by name
        not_run.update({a: why for a, why in left_out.items() if a in attacks})
        attacks = tuple(a for a in attacks if a not in left_out)
    weaker = inversions_left_out(not_run, left_out, gradients=GRADIENTS in available, parties=parties)
    prepared = configured(attacks)
    fingerprint = subject.fingerprint(test.x[:8], seed=job.seed, device=device)
    if view is not None:
        from obfaudit._io import fingerprint as hash_of

        fingerprint += f":traffic:{hash_of(view.traffic)}"
    subjects = [
        AuditSubject(subject.name, lambda t=subject.transform: t, fingerprint, traffic=view is not None)
    ]
    if not job.no_controls and view is None:  # captured traffic has no controls: they were never sent
        random = (
            {"random-weights": (subject.info["arch"], subject.info.get("kwargs", {}))} if subject.info else {}
        )
        for name, make in control_transforms(seed=job.seed, random=random, skip={subject.name}).items():
            recipe = (
                f"control:{name}" if name in ("identity", "null") else f"random:{random[name]}:{job.seed}"
            )
            subjects.append(AuditSubject(name, make, recipe, shared=True))
        shaped = _same_shape_control(subject, train if train is not None else test, test, device)
        if shaped is not None:
            subjects.append(shaped)
    return PreparedJob(
        AuditPieces(prepared, subjects),
        subject,
        split_seed,
        dataset,
        view.about if view is not None else None,
        not_run,
        weaker,
    )


def _same_shape_control(subject, images, test, device: str):
    """The same-shape control (:mod:`obfaudit.transforms.shaped`) of a subject that sends another shape
    than the image's, built from ``images`` (the training split); None where the shapes match (the
    identity is that control)."""
    import torch

    from obfaudit.attacks.prepare import data_fingerprint
    from obfaudit.experiments.audit_plan import AuditSubject
    from obfaudit.transforms import CheckedTransform, to_device
    from obfaudit.transforms.shaped import SAME_SHAPE, SameShapeControl, layout

    with torch.no_grad():
        sent = CheckedTransform(to_device(subject.transform, device), subject.name)(test.x[:2].to(device))
    image, out = tuple(test.shape), tuple(sent.shape[1:])
    if out == image:
        return None
    kind = layout(image, out)
    recipe = f"control:{SAME_SHAPE}:{list(out)}:{kind.kind}:{kind.patch}:{kind.kept}"
    if not kind.lossless:  # principal components of these images
        recipe += f":{data_fingerprint(images)}"
    about = {"shape": list(out), "layout": kind.kind, "lossless": kind.lossless, "keeps": kind.describe()}
    return AuditSubject(
        SAME_SHAPE,
        lambda: SameShapeControl(image, out, images.x),
        recipe,
        shared=True,
        about=about,
        learned_only=True,
    )


#: Why a screen leaves an attack out (it runs when named with --attack).
SCREEN_LEAVES_OUT = "left out of a screen (--budget quick): it costs minutes; --budget standard runs it"


def _pieces(job: AuditJob) -> AuditPieces:
    """The pieces of ``job`` (what a Ray worker makes for itself)."""
    return prepare(job).pieces


# ----------------------------------------------------------------------------- the result


@dataclass
class AuditReport(Result):
    """An audit's verdicts and scores; :meth:`write_report` writes its files."""

    subject: str
    verdict: Verdict | None
    verdicts: dict[str, Verdict | None]
    baselines: Baselines
    skipped: dict[str, dict[str, str]]
    records: list[AttackRecord]
    """The subject's attack records (the controls' are in :attr:`experiments`)."""
    calibration: dict[str, Calibration] = field(default_factory=dict)
    """Whether each attack reads the attribute through the control that checks it, the identity or the
    same-shape control (see :mod:`obfaudit.attacks.calibration`); the verdict counts a "not compromised"
    only from those that do."""
    report: str | None = None
    results: str | None = None
    experiments: list[Experiment] = field(default_factory=list, repr=False)
    document: dict = field(default_factory=dict, repr=False)
    """results.json's content."""
    main: AuditResult | None = field(default=None, repr=False)
    """The subject's result with its figure arrays."""
    fail_on: str | None = field(default=None, repr=False)
    """The gate's level (see :mod:`obfaudit.gate`): :attr:`exit_code` is 3 when a party reaches it."""
    junit: str | None = None
    seconds: float | None = None
    """How long the audit took, end to end (stages kept from an earlier run cost nothing)."""

    @property
    def parties(self) -> list[dict]:
        return self.document.get("parties", [])

    @property
    def exit_code(self) -> int:
        from obfaudit.gate import EXIT_GATE, failing

        return EXIT_GATE if failing(self.parties, self.fail_on) else 0

    def to_dict(self) -> dict:
        from obfaudit._io import to_jsonable

        return to_jsonable(
            {
                "subject": self.subject,
                "verdict": self.verdict,
                "verdicts": self.verdicts,
                "baselines": self.baselines.to_dict(),
                "skipped": self.skipped,
                "records": [r.to_dict() for r in self.records],
                "calibration": {a: c.to_dict() for a, c in self.calibration.items()},
                "report": self.report,
                "results": self.results,
                "parties": self.parties,
                "defence": self.document.get("defence"),
                "utility": self.document.get("utility"),
                "fail_on": self.fail_on,
                "gate_failed": bool(self.exit_code),
                "junit": self.junit,
                "seconds": self.seconds,
            }
        )

    def summary(self) -> str:
        b = self.baselines
        lines = [
            f"{self.subject}: {self.verdict or 'no verdict'} on {b.attribute} "
            f"(line {b.threshold:.0%}, chance {b.chance:.1%}, majority class {b.majority_class:.1%})"
        ]
        before = self.document.get("verdict_of_the_attacks")
        if before and before != self.verdict:
            lines.append(
                f"  ({before} by the attacks, but none of them reads {b.attribute} through a control that "
                "hides nothing: no evidence of privacy)"
            )
        weaker = self.document.get("weaker_attacks_only")
        if weaker:
            lines.append(
                f"  the verdict rests on weaker attacks: {', '.join(weaker)} did not run (see below); an "
                "attacker who knows the transform can run them"
            )
        screen = self.document.get("screen")
        if screen:
            lines.append(
                f"  a screen (--budget {screen['budget']}): it can find a leak, not rule one out; "
                "--budget standard adds: " + "; ".join(screen["standard_adds"])
            )
        d, u = self.document.get("defence"), self.document.get("utility")
        if d:
            lines.append(f"  defence: {d['name']} ({d.get('strength_name', 'strength')} = {d['strength']:g})")
        if u and "obfuscated" in u:
            o, c = u["obfuscated"], u["clean"]
            lines.append(
                f"  utility: the InfNet reads the {u['task']} from {o['accuracy']:.1%} of what is sent "
                f"(clean {c['accuracy']:.1%}; {u['points_lost']:+.1f} points lost)"
            )
        elif u:
            lines.append(f"  utility: not measured ({u['why_not']})")
        from obfaudit.gate import failing, party_table

        if self.parties:
            lines += ["", *(f"  {row}" for row in party_table(self.parties)), ""]
        rows = []
        for rec in self.records:
            m = rec.metrics
            ci = m.interval()
            score = ""
            if m.feature_accuracy is not None:
                score = f"F_a {m.feature_accuracy:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")
            if m.ssim is not None:
                score += f"{'; ' if score else ''}SSIM {m.ssim:.3f}"
            cal = self.calibration.get(rec.attack)
            mark = ""
            if cal and cal.calibrated is False:
                mark = f"  (not calibrated: blind through the {cal.control} control)"
            elif cal and cal.calibrated is None and cal.why.startswith("not checked"):
                mark = f"  ({cal.why})"  # another network kind ran on the identity, or it did not run there
            rows.append((rec.attack, str(rec.party), score, f"{rec.verdict or '-'}{mark}"))
        widths = [max([len(r[i]) for r in rows] + [0]) for i in range(3)]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
            for r in rows
        ]
        for subject, skipped in self.skipped.items():
            for attack, why in skipped.items():
                lines.append(f"  {subject}: {attack} did not run ({why})")
        for subject, verdict in self.verdicts.items():
            if subject != self.subject:
                about = (self.document.get("controls") or {}).get(subject)
                what = f" ({'x'.join(map(str, about['shape']))}, {about['keeps']})" if about else ""
                lines.append(f"  control {subject}{what}: {verdict or 'no verdict'}")
        if self.report:
            lines.append(f"report: {self.report}")
        if self.document.get("knowledge"):
            lines.append(f"attacker knowledge: {self.document['knowledge']['reading']}")
        if self.junit:
            lines.append(f"junit: {self.junit}")
        if self.seconds is not None:
            lines.append(f"done in {_duration(self.seconds)}")
        if self.fail_on:
            bad = ", ".join(
                f"{p['party']} {p['verdict'] or 'no verdict'}" for p in failing(self.parties, self.fail_on)
            )
            outcome = f"FAILED, {bad} (exit 3)" if bad else "passed"
            lines.append(f"gate (--fail-on {self.fail_on}): {outcome}")
        return "\n".join(lines)

    def write_report(self, out: str | Path) -> Path:
        """Write results.json, results.csv, the figures and report.html to ``out``; returns the page."""
        from obfaudit._io import write_json
        from obfaudit.records import write_csv
        from obfaudit.report.audit import write_audit_report

        out = Path(out)
        check_outputs([OutputPath(out, "report directory")])
        write_json(out / "results.json", self.document)
        write_csv(out / "results.csv", self.experiments)
        page = write_audit_report(out, self.document, self.experiments, self.main)
        self.report, self.results = str(page), str(out / "results.json")
        return page


def _assemble(
    job: AuditJob, ready: PreparedJob, results: dict[str, AuditResult], out: Path, judge: dict | None
) -> AuditReport:
    from obfaudit._version import __version__
    from obfaudit.threat import overall_verdict

    pieces, subject = ready.pieces, ready.subject
    prepared = pieces.prepared
    main = results[subject.name]
    if not main.records:
        why = "; ".join(f"{a}: {w}" for a, w in main.skipped.items())
        raise ObfauditError(f"no attack could run on {subject.name}, so there is no verdict ({why})")
    from obfaudit.attacks.calibration import CALIBRATION_CONTROL, calibrate, calibrated_verdict
    from obfaudit.transforms.shaped import SAME_SHAPE

    control = results.get(CALIBRATION_CONTROL)  # the subject itself when it is the identity (see _subject)
    shaped = results.get(SAME_SHAPE)
    calibration = calibrate(  # before the screen
        main.records, control.records if control else None, shaped.records if shaped else None
    )
    screened = _screen(job, main) if job.spent.screen else None
    exps = prepared.rows(results, subject=subject.name, dataset=ready.dataset)
    test, train = prepared.test, prepared.train
    baselines = prepared.baselines
    settings = {
        **job.settings(),
        "data_root": str(Path(job.data_root).resolve()) if job.data_root else None,
        "out": str(out.resolve()),
        "cache": str(job.cache_dir().resolve()),
        "split_seed": ready.split_seed,
        "attacks": list(prepared.config.attacks),
        "command": sys.argv,
        "obfaudit": __version__,
    }
    verdicts = {n: r.verdict for n, r in results.items()}
    verdicts[subject.name] = calibrated_verdict(main.records, calibration)
    main.skipped = {**main.skipped, **ready.not_run}  # unable to run in it, or left out of the audit (why)
    skipped = {n: r.skipped for n, r in results.items() if r.skipped}
    document = {
        "obfaudit_audit": 1,
        "subject": subject.name,
        "source": subject.source,
        **({"gradients": subject.transform.gradients} if hasattr(subject.transform, "gradients") else {}),
        "dataset": {
            "name": ready.dataset,
            "train": len(train) if train is not None else 0,
            "test": len(test),
            "shape": list(test.shape),
            "task": prepared.task,
            # which test images (and their attribute): obfaudit compare pairs two audits image by image
            # only when these agree
            "test_fingerprint": _test_fingerprint(test, prepared.attribute),
        },
        "baselines": baselines.to_dict(),
        "verdicts": verdicts,
        "verdict": verdicts[subject.name],
        "verdict_of_the_attacks": overall_verdict([r.verdict for r in main.records]),
        "calibration": {a: c.to_dict() for a, c in calibration.items()},
        "skipped": skipped,
        "settings": settings,
        "experiments": [e.to_dict() for e in exps],
    }
    info = subject.info or {}
    if info.get("defence") and info["defence"].get("name") != "none":
        document["defence"] = info["defence"]
        label = defence_label(info["defence"])
        for e in exps:
            if e.subject == subject.name:
                e.defence = label
        document["experiments"] = [e.to_dict() for e in exps]
    if prepared.infnet is not None:
        document["utility"] = subject_utility(
            subject.transform,
            prepared.infnet,
            test,
            prepared.task,
            seed=job.seed,
            device=prepared.config.device,
        )
    from obfaudit.report.audit import party_verdicts

    document["parties"] = party_verdicts(subject.name, exps, document["calibration"])
    if judge is not None:  # how well the judge of reconstructions reads the attribute on clean images
        document["judge"] = {
            "attribute": prepared.attribute,
            **{k: judge.get(k) for k in ("clean_test_acc", "clean_test_acc_ci", "verdict", "network")},
        }
    for control in pieces.subjects[1:]:
        if control.about is not None and control.name in results:
            document.setdefault("controls", {})[control.name] = control.about
    if ready.weaker:
        document["weaker_attacks_only"] = ready.weaker
    if ready.traffic is not None:
        document["traffic"] = ready.traffic
    if screened is not None:
        from obfaudit.attacks.prepare import screen_adds

        left_out = [a for a, why in ready.not_run.items() if why == SCREEN_LEAVES_OUT]
        document["screen"] = {
            "budget": job.budget,
            "about": job.spent.about,
            "not_compromised_by_the_attacks": screened,
            "standard_adds": screen_adds(
                job.spent, left_out, generated_proxies=any(n != "folder" for n in prepared.proxies)
            ),
        }
    return AuditReport(
        subject=subject.name,
        verdict=document["verdict"],
        verdicts=verdicts,
        baselines=baselines,
        skipped=skipped,
        records=main.records,
        calibration=calibration,
        experiments=exps,
        document=document,
        main=main,
        fail_on=job.fail_on,
    )


def inversions_left_out(
    not_run: dict[str, str], left_out: dict[str, str], *, gradients: bool, parties
) -> dict[str, str]:
    """The white-box inversions (the attacks that need gradients) of the parties that saw the data that do
    not run because the transform passes no gradients, or because the audit left them out (a screen), with
    why: without them the verdict rests on weaker attacks than one who knows the transform can run. (Not
    those that cannot run for another reason: no proxy for the decoder-started one, say.)"""
    from obfaudit.attacks import attack_class, attack_names
    from obfaudit.threat import GRADIENTS

    out = {}
    for a in attack_names():
        cls = attack_class(a)
        if (
            GRADIENTS in cls.needs
            and cls.party in parties
            and a in not_run
            and (not gradients or a in left_out)
        ):
            out[a] = not_run[a]
    return out


def _screen(job: AuditJob, main: AuditResult) -> list[str]:
    """A screen cannot rule a leak out: each of the subject's *not compromised* becomes *inconclusive*.
    Returns the attacks so changed."""
    from obfaudit.threat import Verdict

    changed = [r for r in main.records if r.verdict is Verdict.NOT_COMPROMISED]
    for r in changed:
        r.verdict = Verdict.INCONCLUSIVE
    return [r.attack for r in changed]


def _duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _test_fingerprint(test, attribute: str) -> str:
    from obfaudit._io import fingerprint

    return fingerprint(test.x, test.labels.get(attribute))


def defence_label(defence: dict) -> str:
    """A defence's short name and strength as the reproduction names them, e.g. ``invariance-100``."""
    return f"{defence['name']}-{defence.get('strength', 0.0):g}"


def subject_utility(transform, infnet, test, task: str, *, seed: int, device) -> dict:
    """The task the InfNet reads from what the transform sends, beside what it reads from clean
    images: accuracies on the test split with 95% bootstrap intervals, and the points lost; or why
    it cannot be measured (the InfNet does not take what the transform sends)."""
    from obfaudit.attacks.uncertainty import Bootstrap
    from obfaudit.train import predict
    from obfaudit.transforms import CheckedTransform, apply_transform, to_device

    z = apply_transform(CheckedTransform(to_device(transform, device), "subject"), test.x, device=device)
    expected = tuple(getattr(infnet, "input_shape", z.shape[1:]))
    if tuple(z.shape[1:]) != expected:
        return {"why_not": f"the InfNet takes {expected}, the transform sends {tuple(z.shape[1:])}"}
    labels = test.labels[task]
    boot = Bootstrap(len(test), seed=seed)
    out = {"task": task}
    for name, x in (("obfuscated", z), ("clean", test.x)):
        correct = (predict(infnet, x, device=device).argmax(1).cpu() == labels).float().numpy()
        out[name] = {"accuracy": float(correct.mean()), "ci": boot.interval(correct)}
    out["points_lost"] = 100 * (out["clean"]["accuracy"] - out["obfuscated"]["accuracy"])
    return out


def audit(job: AuditJob, *, on_progress: OnProgress = quiet) -> AuditReport:
    """Audit one transform on one dataset and sensitive attribute: every applicable attack (or those
    asked for) under its party, the baselines and the controls; resumable into ``job.out``, whose
    results.json, results.csv, figures and report.html it writes.

    Args:
        job: the audit's settings.
        on_progress: receives a :class:`Progress` as each stage starts and ends.
    """
    from obfaudit._io import RunLock
    from obfaudit.experiments.audit_plan import AuditContext, collect_audit, plan_audit
    from obfaudit.experiments.executors import closing_executor, make_executor
    from obfaudit.experiments.stages import StageEvent

    if job.split:
        raise ObfauditError(
            "an audit with --split is a sweep of cuts: call obfaudit.commands.split.audit_split"
        )
    if job.known_pairs:
        from obfaudit.commands.knowledge import audit_knowledge

        return audit_knowledge(job, audit=audit, on_progress=on_progress)
    out = Path(job.out)
    check_outputs([OutputPath(out, "--out")])
    t0 = time.perf_counter()
    # (an executor may start its workers now, to load while this process prepares: stopped whatever happens)
    with closing_executor(make_executor(job.executor, address=job.address)) as executor, RunLock(out):
        ready = prepare(job)
        device = ready.pieces.prepared.config.device
        cache = Path(job.cache_dir()).resolve()
        stages = plan_audit(ready.pieces, cache=cache, gpu=str(device).startswith("cuda"))
        if any(s.store is not None for s in stages):  # only the controls and the judge live there
            check_outputs([OutputPath(cache, "--cache")])
        ctx = AuditContext(prepare=partial(_pieces, job), out=out, cache=cache, progress=job.progress)
        ctx._pieces = ready.pieces
        about = {s.name: s.about for s in stages}
        names = [s.name for s in ready.pieces.subjects]

        def report(event: StageEvent) -> None:
            a = about[event.stage]
            if "attack" in a:
                i = names.index(a["subject"]) + 1 if a["subject"] in names else 0
                what = f"subject {i} of {len(names)} ({a['subject']}), attack {a['attack']}"
            else:
                what = f"the {a['kind']} of {a.get('attribute')}"
            state = {
                "running": "started",
                "done": f"done in {event.seconds:.1f} s",
                "skipped": "kept from an earlier run",
            }[event.state]
            left = ""
            if event.left and event.done < event.total:  # the stages that will run, at the rate measured
                left = f"; about {_duration(event.left)} left"
            if event.state != "running" or event.running:
                on_progress(
                    Progress(f"[{event.done}/{event.total}] {what}: {state}{left}", event.done, event.total)
                )

        records = executor.run(stages, ctx, on_event=report)
        results = collect_audit(stages, records, out, [s.name for s in ready.pieces.subjects])
        judge = next((records[s.name]["result"] for s in stages if s.about.get("kind") == "judge"), None)
        result = _assemble(job, ready, results, out, judge)
        result.seconds = round(time.perf_counter() - t0, 1)
        result.write_report(out)
        if job.junit:
            from obfaudit.gate import write_junit

            result.junit = str(
                write_junit(job.junit, result.subject, result.parties, job.fail_on, report=result.report)
            )
    return result


def _sweep_progress(on_progress: OnProgress, after: int, pace: float | None) -> OnProgress:
    """A cut's progress lines, each saying what the sweep has left after this cut: ``after`` more cuts, at
    ``pace`` seconds each (the last cut's; deeper cuts usually cost more, so it is a floor)."""
    if not after:
        return on_progress
    more = f"{after} more cut{'s' if after > 1 else ''}"
    tail = f"; then {more}" + (f", at least {_duration(after * pace)} at the last cut's pace" if pace else "")

    def report(progress: Progress) -> None:
        on_progress(replace(progress, message=progress.message + tail))

    return report


def audit_split(job: AuditJob, *, on_progress: OnProgress = quiet) -> SplitReport:
    """Cut the model of ``job.transform`` at each of ``job.split``, audit each cut into ``OUT/<node>``,
    and write the sweep's results, figure and report into ``job.out``."""
    from obfaudit._io import resolve_device, write_json
    from obfaudit.commands.split import SplitReport, cut_row, safe_node, split_nodes, task_utility
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
    train, test, attribute, task = _task_data(job, job.data or "colored-mnist", job.seed)
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
        rep = audit(cut, on_progress=_sweep_progress(on_progress, len(nodes) - i, last_cut))
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


# ----------------------------------------------------------------------------- the command


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
        "null and random-weights controls. Writes results.json/csv, figures and report.html; rerunning "
        f"into the same --out resumes. Attacks: {attacks_listing()}."
    )


def run(args: argparse.Namespace, ui: Interface) -> Result:
    job = pick(args, AuditJob, progress=ui.progress_bars)
    if job.known_pairs:
        from obfaudit.commands.knowledge import known_pairs_list

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
