"""An audit's result: the verdicts, the calibration, the baselines and every record, as the document
that results.json holds and the report, ``compare`` and the gate read; and how it is assembled from
the stages' records."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from obfaudit._io import OutputPath, check_outputs
from obfaudit.audit.job import AuditJob
from obfaudit.audit.resolve import SCREEN_LEAVES_OUT, ResolvedJob
from obfaudit.errors import ObfauditError
from obfaudit.records import AuditDocument, PartyVerdict
from obfaudit.results import Result, duration

if TYPE_CHECKING:
    from obfaudit.attacks import AuditResult
    from obfaudit.attacks.calibration import Calibration
    from obfaudit.attacks.prepare import Baselines
    from obfaudit.records import AttackRecord, Experiment
    from obfaudit.threat import Verdict


@dataclass
class AuditReport(Result):
    """An audit's result: its document (:class:`~obfaudit.records.AuditDocument`, what results.json
    holds), the subject's records, calibration and baselines as objects, and where it wrote;
    :meth:`write_report` writes its files."""

    document: AuditDocument = field(repr=False)
    records: list[AttackRecord]
    """The subject's attack records (the controls' are rows of the document)."""
    baselines: Baselines
    calibration: dict[str, Calibration] = field(default_factory=dict)
    """Whether each attack reads the attribute through the control that checks it, the identity or the
    same-shape control (see :mod:`obfaudit.attacks.calibration`); the verdict counts a "not compromised"
    only from those that do."""
    report: str | None = None
    results: str | None = None
    main: AuditResult | None = field(default=None, repr=False)
    """The subject's result with its figure arrays."""
    fail_on: str | None = field(default=None, repr=False)
    """The gate's level (see :mod:`obfaudit.gate`): :attr:`exit_code` is 3 when a party reaches it."""
    junit: str | None = None
    seconds: float | None = None
    """How long the audit took, end to end (stages kept from an earlier run cost nothing)."""

    @property
    def subject(self) -> str:
        return self.document.subject

    @property
    def verdict(self) -> Verdict | None:
        """The subject's verdict, calibrated."""
        return self.document.verdict

    @property
    def verdicts(self) -> dict[str, Verdict | None]:
        """Each subject's verdict (the controls' too)."""
        return self.document.verdicts

    @property
    def skipped(self) -> dict[str, dict[str, str]]:
        return self.document.skipped

    @property
    def experiments(self) -> list[Experiment]:
        return self.document.experiments

    @property
    def parties(self) -> list[PartyVerdict]:
        return self.document.parties

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
                "defence": self.document.defence,
                "utility": self.document.utility,
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
        lines += self._caveat_lines()
        from obfaudit.gate import failing, party_table

        if self.parties:
            lines += ["", *(f"  {row}" for row in party_table(self.parties)), ""]
        lines += self._attack_lines()
        for subject, skipped in self.skipped.items():
            for attack, why in skipped.items():
                lines.append(f"  {subject}: {attack} did not run ({why})")
        for subject, verdict in self.verdicts.items():
            if subject != self.subject:
                about = (self.document.controls or {}).get(subject)
                what = f" ({'x'.join(map(str, about['shape']))}, {about['keeps']})" if about else ""
                lines.append(f"  control {subject}{what}: {verdict or 'no verdict'}")
        for name, about in (self.document.controls or {}).items():
            if about.get("the_subject"):
                shape = "x".join(map(str, about["shape"]))
                lines.append(
                    f"  control {name} ({shape}, {about['keeps']}): the subject itself, which sends just that"
                )
        if self.report:
            lines.append(f"report: {self.report}")
        if self.document.knowledge:
            lines.append(f"attacker knowledge: {self.document.knowledge['reading']}")
        if self.junit:
            lines.append(f"junit: {self.junit}")
        if self.seconds is not None:
            lines.append(f"done in {duration(self.seconds)}")
        if self.fail_on:
            bad = ", ".join(
                f"{p.party} {p.verdict or 'no verdict'}" for p in failing(self.parties, self.fail_on)
            )
            outcome = f"FAILED, {bad} (exit 3)" if bad else "passed"
            lines.append(f"gate (--fail-on {self.fail_on}): {outcome}")
        return "\n".join(lines)

    def _caveat_lines(self) -> list[str]:
        """What qualifies the verdict: no calibrated attack, weaker attacks only, a screen; the defence and
        the utility."""
        b = self.baselines
        lines = []
        before = self.document.verdict_of_the_attacks
        if before and before != self.verdict:
            lines.append(
                f"  ({before} by the attacks, but none of them reads {b.attribute} through a control that "
                "hides nothing: no evidence of privacy)"
            )
        weaker = self.document.weaker_attacks_only
        if weaker:
            lines.append(
                f"  the verdict rests on weaker attacks: {', '.join(weaker)} did not run (see below); an "
                "attacker who knows the transform can run them"
            )
        screen = self.document.screen
        if screen:
            lines.append(
                f"  a screen (--budget {screen['budget']}): it can find a leak, not rule one out; "
                "--budget standard adds: " + "; ".join(screen["standard_adds"])
            )
        d, u = self.document.defence, self.document.utility
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
        return lines

    def _attack_lines(self) -> list[str]:
        """One line per attack on the subject: its party, score and verdict, and its calibration where it
        was not calibrated or not checked."""
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
        return [
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
            for r in rows
        ]

    def write_report(self, out: str | Path) -> Path:
        """Write results.json, results.csv, the figures and report.html to ``out``; returns the page."""
        from obfaudit._io import write_json
        from obfaudit.records import write_csv
        from obfaudit.report.audit import write_audit_report

        out = Path(out)
        check_outputs([OutputPath(out, "report directory")])
        write_json(out / "results.json", self.document.to_dict())
        write_csv(out / "results.csv", self.experiments)
        page = write_audit_report(out, self.document, self.experiments, self.main)
        self.report, self.results = str(page), str(out / "results.json")
        return page


def assemble(
    job: AuditJob,
    ready: ResolvedJob,
    results: dict[str, AuditResult],
    exps: list[Experiment],
    out: Path,
    judge: dict | None,
) -> AuditReport:
    """The audit's result from each subject's records: the subject's verdict counts a *not compromised*
    only from calibrated attacks (:mod:`obfaudit.attacks.calibration`), a screen never says it, and the
    document holds what results.json holds."""
    from obfaudit.attacks.calibration import calibrated_verdict
    from obfaudit.threat import overall_verdict

    subject, prepared = ready.subject, ready.prepared
    main = results[subject.name]
    if not main.records:
        why = "; ".join(f"{a}: {w}" for a, w in main.skipped.items())
        raise ObfauditError(f"no attack could run on {subject.name}, so there is no verdict ({why})")
    calibration = _calibration(main, results, own=ready.own_shape is not None)  # before the screen
    screened = _screen(job, main) if job.spent.screen else None
    exps = _screened_rows(exps, screened or [])
    verdicts = {n: r.verdict for n, r in results.items()}
    verdicts[subject.name] = calibrated_verdict(main.records, calibration)
    main.skipped = {**main.skipped, **ready.not_run}  # unable to run in it, or left out of the audit (why)
    skipped = {n: r.skipped for n, r in results.items() if r.skipped}
    document = {
        AuditDocument.FORMAT: AuditDocument.VERSION,
        "subject": subject.name,
        "source": subject.source,
        **({"gradients": subject.transform.gradients} if hasattr(subject.transform, "gradients") else {}),
        "dataset": _dataset(ready),
        "baselines": prepared.baselines.to_dict(),
        "verdicts": verdicts,
        "verdict": verdicts[subject.name],
        "verdict_of_the_attacks": overall_verdict([r.verdict for r in main.records]),
        "calibration": {a: c.to_dict() for a, c in calibration.items()},
        "skipped": skipped,
        "settings": _settings(job, ready, out),
    }
    _defence(document, subject, exps)
    document["experiments"] = exps
    _add_findings(document, job, ready, results, exps, judge, screened)
    return AuditReport(
        document=AuditDocument.from_dict(document),
        records=main.records,
        baselines=prepared.baselines,
        calibration=calibration,
        main=main,
        fail_on=job.fail_on,
    )


def _calibration(main: AuditResult, results: dict[str, AuditResult], *, own: bool) -> dict[str, Calibration]:
    """Each of the subject's attacks checked by the identity, or by the same-shape control where it ran
    (``own``: the subject sends what that control sends, so its own records are the control's)."""
    from obfaudit.attacks.calibration import CALIBRATION_CONTROL, calibrate
    from obfaudit.transforms.shaped import SAME_SHAPE

    control = results.get(CALIBRATION_CONTROL)  # the subject itself when it is the identity (see _subject)
    shaped = main if own else results.get(SAME_SHAPE)
    learned = [r for r in shaped.records if r.attack in _learned(main.records)] if shaped else None
    return calibrate(main.records, control.records if control else None, learned)


def _learned(records) -> set[str]:
    """The attacks among ``records`` that learn from what is sent (not those that use the transform)."""
    from obfaudit.attacks import attack_class

    return {r.attack for r in records if not attack_class(r.attack).uses_transform()}


def _dataset(ready: ResolvedJob) -> dict:
    prepared = ready.prepared
    test, train = prepared.test, prepared.train
    return {
        "name": ready.dataset,
        "train": len(train) if train is not None else 0,
        "test": len(test),
        "shape": list(test.shape),
        "task": prepared.task,
        # which test images (and their attribute): obfaudit compare pairs two audits image by image
        # only when these agree
        "test_fingerprint": _test_fingerprint(test, prepared.attribute),
    }


def _settings(job: AuditJob, ready: ResolvedJob, out: Path) -> dict:
    """The job as it ran: its options, where it wrote, the split's seed, the attacks, the command line."""
    from obfaudit._version import __version__

    return {
        **job.settings(),
        "data_root": str(Path(job.data_root).resolve()) if job.data_root else None,
        "out": str(out.resolve()),
        "cache": str(job.cache_dir().resolve()),
        "split_seed": ready.split_seed,
        "attacks": list(ready.prepared.config.attacks),
        "command": sys.argv,
        "obfaudit": __version__,
    }


def _defence(document: dict, subject, exps: list[Experiment]) -> None:
    """A defended model's defence, in the document and on the subject's rows."""
    info = subject.info or {}
    if info.get("defence") and info["defence"].get("name") != "none":
        document["defence"] = info["defence"]
        label = defence_label(info["defence"])
        for e in exps:
            if e.subject == subject.name:
                e.defence = label


def _add_findings(
    document: dict,
    job: AuditJob,
    ready: ResolvedJob,
    results: dict[str, AuditResult],
    exps: list[Experiment],
    judge: dict | None,
    screened: list[str] | None,
) -> None:
    """The parts of the document an audit has only sometimes: the utility (with an InfNet), the parties'
    verdicts, the judge, what the controls are, the inversions left out, the capture, the screen."""
    from obfaudit.report.audit import party_verdicts

    subject, prepared = ready.subject, ready.prepared
    if prepared.infnet is not None:
        document["utility"] = subject_utility(
            subject.transform,
            prepared.infnet,
            prepared.test,
            prepared.task,
            seed=job.seed,
            device=prepared.config.device,
        )
    document["parties"] = party_verdicts(subject.name, exps, document["calibration"])
    if judge is not None:  # how well the judge of reconstructions reads the attribute on clean images
        document["judge"] = {
            "attribute": prepared.attribute,
            **{k: judge.get(k) for k in ("clean_test_acc", "clean_test_acc_ci", "verdict", "network")},
        }
    for control in ready.subjects[1:]:
        if control.about is not None and control.name in results:
            document.setdefault("controls", {})[control.name] = control.about
    if ready.own_shape is not None:  # not run: the subject is it
        from obfaudit.transforms.shaped import SAME_SHAPE

        document.setdefault("controls", {})[SAME_SHAPE] = ready.own_shape
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


def _screen(job: AuditJob, main: AuditResult) -> list[str]:
    """A screen cannot rule a leak out: each of the subject's *not compromised* becomes *inconclusive*.
    Returns the attacks so changed."""
    from obfaudit.threat import Verdict

    changed = [r for r in main.records if r.verdict is Verdict.NOT_COMPROMISED]
    for r in changed:
        r.verdict = Verdict.INCONCLUSIVE
    return [r.attack for r in changed]


def _screened_rows(exps: list[Experiment], screened: list[str]) -> list[Experiment]:
    """The rows of the subject's attacks a screen changed, changed as their records are."""
    from dataclasses import replace

    from obfaudit.records import Kind
    from obfaudit.threat import Verdict

    return [
        replace(e, verdict=Verdict.INCONCLUSIVE)
        if e.kind is Kind.ATTACK and e.attack in screened and e.verdict is Verdict.NOT_COMPROMISED
        else e
        for e in exps
    ]


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


__all__ = ["AuditReport", "assemble", "defence_label", "subject_utility"]
