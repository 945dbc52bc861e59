"""An audit job resolved into what its plan needs: the data (or a capture), the transform under audit
and its controls, the proxies and the InfNet, and the attacks that run (and why the others do not)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from obfaudit.audit.job import AuditJob
from obfaudit.errors import ObfauditError

if TYPE_CHECKING:
    from obfaudit.attacks.prepare import PreparedAudit
    from obfaudit.audit.plan import AuditSubject


@dataclass
class ResolvedJob:
    """An audit job resolved: what its plan attacks, on what, and what the results say about where it
    came from."""

    prepared: PreparedAudit
    """The data, proxies, InfNet and attack settings (:mod:`obfaudit.attacks.prepare`)."""
    subjects: list[AuditSubject]
    """What the plan attacks, in order: the transform under audit, then its controls."""
    subject: Any
    """The loaded transform under audit (:class:`obfaudit.transforms.LoadedTransform`)."""
    split_seed: int
    dataset: str
    traffic: dict | None = None
    """What a capture held (audits of traffic)."""
    not_run: dict[str, str] = field(default_factory=dict)
    """Registered attacks left out of the audit, and why."""
    weaker: dict[str, str] = field(default_factory=dict)
    """The white-box inversions that did not run because the transform passes no gradients or the audit
    left them out (a screen), and why: then its verdict rests on weaker attacks."""
    own_shape: dict | None = None
    """The same-shape control's description when the subject sends just what that control sends (a
    lossless subject): the control does not run and the subject's own records calibrate its attacks."""


def task_data(job: AuditJob, dataset: str, seed: int):
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


@dataclass
class _Data:
    """What an audit attacks: the splits, the attribute and the task, and where they came from (a
    dataset, or a capture's ``view``)."""

    train: Any
    test: Any
    attribute: str
    task: str
    split_seed: int
    dataset: str
    view: Any = None

    @property
    def parties(self) -> tuple:
        """Who saw the data: every party, or (a capture) those the capture says saw it."""
        from obfaudit.threat import PARTIES, Party

        return tuple(Party(p) for p in self.view.about["parties"]) if self.view is not None else PARTIES


def _data(job: AuditJob, subject: Any) -> _Data:
    """The capture of ``job.traffic`` or the dataset (a saved model's own, with its own split seed:
    another seed would put its training images in the test split)."""
    from obfaudit.data import dataset_names

    if job.traffic or job.edge_record:
        if not (job.traffic and job.edge_record):
            raise ObfauditError(
                "--traffic and --edge-record go together: the capture and the edge's record of it"
            )
        from obfaudit.serve.traffic import captured_view

        view = captured_view(job.traffic, job.edge_record, n_train=job.n_train)
        dataset = view.about.get("dataset") or view.test.source
        seed = view.about["split_seed"]
        return _Data(view.train, view.test, view.attribute, view.task, seed, dataset, view)
    split_seed = subject.info.get("seed", job.seed) if subject.info else job.seed
    own = subject.dataset if subject.dataset in dataset_names() else None
    train, test, attribute, task = task_data(job, job.data or own or "colored-mnist", split_seed)
    return _Data(train, test, attribute, task, split_seed, test.source)


def _check_subject(job: AuditJob, subject: Any, data: _Data, device: str) -> None:
    """The transform fits the data (and sends what the capture holds); an ONNX graph is converted for the
    white-box attacks."""
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.transforms import CheckedTransform
    from obfaudit.transforms.onnx import OnnxTransform

    test = data.test
    if isinstance(subject.transform, OnnxTransform):
        subject.transform.check_input(test.shape)
        subject.transform.differentiate(test.x[:64])  # the white-box attacks' way through the graph
    if subject.info:
        check_model_fits(subject.info, test, what=f"--transform {job.transform}")
    if data.view is not None:
        z = CheckedTransform(subject.transform, subject.name)(test.x[:2].to(device))
        held = tuple(data.view.traffic.shape[1:])
        if tuple(z.shape[1:]) != held:
            raise ObfauditError(
                f"--transform {job.transform} sends {tuple(z.shape[1:])}, the capture holds {held}: not the "
                "transform of this traffic"
            )


def _proxies(job: AuditJob, data: _Data) -> dict:
    """The adversary's proxies, when an attack that runs needs them."""
    from obfaudit.attacks import attack_class
    from obfaudit.attacks.prepare import make_proxies
    from obfaudit.data import dataset_names

    if job.attacks is not None and not any(
        any(n.kind == "proxy" for n in attack_class(a).needs) for a in job.attacks
    ):
        return {}
    return make_proxies(
        job.proxy,
        attribute=data.attribute,
        test=data.test,
        seed=job.seed,
        n=job.spent.n_proxy,
        private=None if data.dataset in dataset_names() else job.data,
    )


def _configured(job: AuditJob, data: _Data, proxies: dict, infnet: Any, device: str, attacks: tuple):
    """The :class:`~obfaudit.attacks.prepare.PreparedAudit` of ``attacks`` on ``data``."""
    from obfaudit.attacks.prepare import PreparedAudit, audit_config

    spent = job.spent
    config = audit_config(
        attacks,
        attribute=data.attribute,
        task=data.task,
        budget=spent.attack_budget(job.attack_nets),
        seed=job.seed,
        device=device,
        tsne_points=min(spent.n_tsne, len(data.test)),
        tsne_backend=job.tsne_backend,
        repeats=job.repeats,
        progress=job.progress,
        known_pairs=job.pairs_held,
    )
    traffic = data.view.traffic if data.view is not None else None
    return PreparedAudit(
        data.train, data.test, data.attribute, data.task, proxies, config, infnet, traffic, data.parties
    )


def _attacks(job: AuditJob, prepared: Any, subject: Any, parties: tuple):
    """The attacks that run, those that do not (with why), and the white-box inversions among the latter
    whose absence leaves the verdict to weaker attacks."""
    from obfaudit.attacks import attack_class
    from obfaudit.threat import GRADIENTS
    from obfaudit.transforms.onnx import OnnxTransform

    available = prepared.available(subject.transform)
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
    return attacks, not_run, weaker


def _subjects(job: AuditJob, subject: Any, data: _Data, device: str, attacks: tuple[str, ...]) -> list:
    """The transform under audit, then its controls (none for captured traffic: they were never sent; the
    same-shape control only where an attack that learns from what is sent runs)."""
    from obfaudit.attacks.prepare import control_transforms
    from obfaudit.audit.plan import AuditSubject

    view = data.view
    fingerprint = subject.fingerprint(data.test.x[:8], seed=job.seed, device=device)
    if view is not None:
        from obfaudit._io import fingerprint as hash_of

        fingerprint += f":traffic:{hash_of(view.traffic)}"
    subjects = [
        AuditSubject(subject.name, lambda t=subject.transform: t, fingerprint, traffic=view is not None)
    ]
    if job.no_controls or view is not None:
        return subjects
    random = (
        {"random-weights": (subject.info["arch"], subject.info.get("kwargs", {}))} if subject.info else {}
    )
    for name, make in control_transforms(seed=job.seed, random=random, skip={subject.name}).items():
        recipe = f"control:{name}" if name in ("identity", "null") else f"random:{random[name]}:{job.seed}"
        subjects.append(AuditSubject(name, make, recipe, shared=True))
    from obfaudit.attacks import attack_class

    if all(attack_class(a).uses_transform() for a in attacks):
        return subjects
    images = data.train if data.train is not None else data.test
    shaped = _same_shape_control(subject, images, data.test, device)
    return subjects + ([shaped] if shaped is not None else [])


def resolve(job: AuditJob) -> ResolvedJob:
    """Load the data (or the capture), the transform, the proxies and the InfNet; choose the attacks;
    list the subjects (the transform, then its controls)."""
    from obfaudit._io import resolve_device
    from obfaudit.attacks import attack_class
    from obfaudit.experiments.steps import check_model_fits
    from obfaudit.models import Role, load_model

    device = str(resolve_device(job.device))
    for name in job.attacks or ():
        attack_class(name)  # an unknown name is one line, before any work
    subject = _subject(job, device)
    data = _data(job, subject)
    _check_subject(job, subject, data, device)
    proxies = _proxies(job, data)
    infnet = None
    if job.infnet:
        infnet, info = load_model(job.infnet, device=device, role=Role.INFNET)
        check_model_fits(info, data.test, what=f"--infnet {job.infnet}")
    unplanned = _configured(job, data, proxies, infnet, device, ())
    attacks, not_run, weaker = _attacks(job, unplanned, subject, data.parties)
    prepared = _configured(job, data, proxies, infnet, device, attacks)
    subjects = _subjects(job, subject, data, device, attacks)
    # a subject that sends just what its same-shape control sends calibrates itself: the control is not run
    own = next((s.about for s in subjects if s.about and s.about.get("the_subject")), None)
    return ResolvedJob(
        prepared,
        [s for s in subjects if s.about is not own or own is None],
        subject,
        data.split_seed,
        data.dataset,
        data.view.about if data.view is not None else None,
        not_run,
        weaker,
        own,
    )


def _same_shape_control(subject, images, test, device: str):
    """The same-shape control (:mod:`obfaudit.transforms.shaped`) of a subject that sends another shape
    than the image's, built from ``images`` (the training split); None where the shapes match (the
    identity is that control)."""
    import torch

    from obfaudit.attacks.prepare import data_fingerprint
    from obfaudit.audit.plan import AuditSubject
    from obfaudit.train import as_float
    from obfaudit.transforms import CheckedTransform, to_device
    from obfaudit.transforms.shaped import SAME_SHAPE, SameShapeControl, layout

    probe = as_float(test.x[:8].to(device))
    with torch.no_grad():
        sent = CheckedTransform(to_device(subject.transform, device), subject.name)(probe)
    image, out = tuple(test.shape), tuple(sent.shape[1:])
    if out == image:
        return None
    kind = layout(image, out)
    recipe = f"control:{SAME_SHAPE}:{list(out)}:{kind.kind}:{kind.patch}:{kind.kept}"
    if not kind.lossless:  # principal components of these images
        recipe += f":{data_fingerprint(images)}"
    about = {"shape": list(out), "layout": kind.kind, "lossless": kind.lossless, "keeps": kind.describe()}
    if kind.lossless:  # a subject that sends just what the control sends is its own control: not run twice
        with torch.no_grad():
            control = to_device(SameShapeControl(image, out), device)(probe)
        if torch.equal(control, sent.to(control.dtype)):
            about["the_subject"] = True
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


__all__ = ["SCREEN_LEAVES_OUT", "ResolvedJob", "inversions_left_out", "resolve"]
