"""Typed experiment rows from a run's stage records (their ``about`` says what each is): the one row
collector of the study's reproduction and of an audit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from obfaudit.records import AttackRecord, Experiment, Kind
from obfaudit.threat import PARTIES, Verdict

MODEL_KINDS = ("infnet", "obfnet", "judge")


def _typed(about: dict) -> dict:
    return {k: about.get(k) for k in ("dataset", "attribute", "arch", "bottleneck", "defence")}


def collect_experiments(
    records: dict[str, dict], stages: Iterable[str] | None = None, *, left_out: list[str] | None = None
) -> list[Experiment]:
    """One :class:`Experiment` per model, attack, control, cost row and scaling result.

    A damaged record (valid JSON missing fields a result needs) is left out, never a crash,
    and named in ``left_out`` (when given) for the report to say: ``obfaudit reproduce``
    recomputes such a stage, ``obfaudit report`` reports without it.
    """
    order = list(stages) if stages is not None else sorted(records)
    rows: list[Experiment] = []
    for name in order:
        if name in records:
            try:
                rows += _rows(name, records[name])
            except (KeyError, TypeError, ValueError, AttributeError):
                if left_out is not None:
                    left_out.append(name)
    return rows


def _rows(name: str, rec: dict) -> list[Experiment]:
    """The experiment rows of one stage record."""
    rows: list[Experiment] = []
    about, res, settings = rec.get("about") or {}, rec["result"], rec.get("settings", {})
    kind = about.get("kind")
    typed = _typed(about)
    if kind in MODEL_KINDS:
        rows.append(
            Experiment(
                id=name,
                kind=kind,
                **typed,
                metrics={k: v for k, v in res.items() if k not in ("model", "fit", "network")},
                fit=res.get("fit") or {},
                settings=settings,
                model=res.get("model"),
                seconds=rec.get("seconds"),
            )
        )
    elif kind in ("audit", "controls"):  # a whole subject's attacks: written before obfaudit.audit.plan
        raise ValueError(f"stage {name} is of an older obfaudit: rerun the command to recompute it")
    elif kind in (Kind.ATTACK, Kind.CONTROL):  # one attack on one subject (obfaudit.audit.plan)
        if res["record"] is not None:  # None: skipped, and why
            ar = AttackRecord.from_dict(res["record"])
            rows.append(
                Experiment.from_attack(
                    ar,
                    id=about.get("id") or f"{ar.subject}/{ar.attack}",
                    kind=Kind(kind),
                    **typed,
                    settings=settings,
                    artifacts=res.get("artifacts"),
                )
            )
    elif kind == "cost":
        for r in res.get("rows", []):
            rows.append(
                Experiment(
                    id=f"cost/{r['model']}", kind="cost", subject=r["model"], metrics=r, settings=settings
                )
            )
    elif kind == "scaling":
        rows.append(
            Experiment(
                id="scaling/resnet50",
                kind="scaling",
                subject="resnet50",
                metrics={"clean_top1": res["resnet50"]["clean_top1"]},
                settings=settings,
            )
        )
        for obf, m in res.get("obfuscators", {}).items():
            rows.append(
                Experiment(
                    id=f"scaling/{obf}",
                    kind="scaling",
                    subject=obf,
                    arch=obf,
                    metrics={k: v for k, v in m.items() if k != "fit"},
                    fit=m.get("fit") or {},
                    settings=settings,
                )
            )
    return rows


def attack_records(records: dict[str, dict]) -> Iterable[tuple[dict, dict]]:
    """(about, result) of each attack stage's record (one attack on one subject)."""
    for rec in records.values():
        about = rec.get("about") or {}
        if about.get("kind") in (Kind.ATTACK, Kind.CONTROL) and isinstance(rec.get("result"), dict):
            yield about, rec["result"]


def baselines_by_dataset(records: dict[str, dict]) -> dict[str, dict]:
    """{dataset: chance, majority and compromise line of its attribute}, from the attack records."""
    return {
        about["dataset"]: res["baselines"]
        for about, res in attack_records(records)
        if about.get("dataset") and isinstance(res.get("baselines"), dict)
    }


def skipped_attacks(records: dict[str, dict]) -> dict[str, set[str]]:
    """{"attack: why it did not run": the subjects it did not run on} of the attack records."""
    out: dict[str, set[str]] = {}
    for about, res in attack_records(records):
        if res.get("skipped"):
            where = str(about.get("id") or about.get("subject")).rpartition("/")[0] or str(
                about.get("subject")
            )
            attack = res.get("attack") or about.get("attack")
            out.setdefault(f"{attack}: {res['skipped']}", set()).add(where)
    return out


def calibrated_verdict(on: Iterable[Experiment], exps: Iterable[Experiment], dataset: str) -> Verdict | None:
    """The verdict of the attacks ``on`` one ObfNet of ``dataset``, a *not compromised* counted only from
    attacks that read the attribute through that dataset's identity control, as an audit counts it
    (:mod:`obfaudit.attacks.calibration`); as the attacks give it where no identity control ran."""
    from obfaudit.attacks.calibration import CALIBRATION_CONTROL, calibrate
    from obfaudit.attacks.calibration import calibrated_verdict as verdict

    on = list(on)
    identity = [
        e
        for e in exps
        if e.kind is Kind.CONTROL and e.dataset == dataset and e.subject == CALIBRATION_CONTROL
    ]
    return verdict(on, calibrate(on, identity or None))


def attacks_by_subject(exps: list[Experiment], dataset: str) -> dict[tuple[str, int], dict[str, Experiment]]:
    """{(arch, N): {attack: experiment}} for the attacks on the ObfNets of ``dataset``."""
    out: dict[tuple[str, int], dict[str, Experiment]] = defaultdict(dict)
    for e in exps:
        if e.kind is Kind.ATTACK and e.dataset == dataset:
            out[(e.arch, e.bottleneck)][e.attack] = e
    return out


def attack_series(
    exps: list[Experiment], dataset: str, attack: str, metric: str = "feature_accuracy"
) -> dict[str, tuple[list[int], list[float]]]:
    """{arch: (bottlenecks, values)} of one attack's metric across the sweep."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    pts = sorted(
        (e.arch, e.bottleneck, e.metrics.get(metric))
        for e in exps
        if e.kind is Kind.ATTACK
        and e.dataset == dataset
        and e.attack == attack
        and e.metrics.get(metric) is not None
    )
    for arch, n, v in pts:
        out.setdefault(arch, ([], []))
        out[arch][0].append(n)
        out[arch][1].append(v)
    return out


def attacks_present(exps: list[Experiment], *, output: str | None = None) -> list[str]:
    """Attack names in the results, in the registry's order, optionally of one output kind."""
    from obfaudit.attacks import attack_names

    seen = {
        e.attack
        for e in exps
        if e.kind in (Kind.ATTACK, Kind.CONTROL) and (output is None or e.output == output)
    }
    known = [a for a in attack_names() if a in seen]
    return known + sorted(seen - set(known))


def lower_bound(e: Experiment, metric: str = "feature_accuracy") -> float:
    """The lower end of a metric's 95% interval (the value itself when it has none)."""
    return e.metrics.lower(metric)


def upper_bound(e: Experiment, metric: str = "feature_accuracy") -> float:
    return e.metrics.upper(metric)


def strongest_by(records: Iterable[Experiment], metric: str) -> Experiment | None:
    """The record with the highest lower bound of ``metric`` (F_a, SSIM), or None."""
    scored = [e for e in records if e.metrics.get(metric) is not None]
    return max(scored, key=lambda e: lower_bound(e, metric)) if scored else None


def strongest(records: list[Experiment]) -> Experiment | None:
    """The worst case among one party's attacks: the highest F_a lower bound, else the best SSIM."""
    return strongest_by(records, "feature_accuracy") or strongest_by(records, "ssim")


def worst_case(on: Iterable[Experiment]) -> dict[str, dict[str, Experiment | None]]:
    """{party: {"feature_accuracy": strongest by F_a, "ssim": best reconstruction}} of one subject."""
    by_party: dict[str, list[Experiment]] = defaultdict(list)
    for e in on:
        by_party[e.party].append(e)
    return {
        party: {m: strongest_by(recs, m) for m in ("feature_accuracy", "ssim")}
        for party, recs in sorted(by_party.items(), key=lambda kv: PARTY_ORDER.get(kv[0], 9))
    }


PARTY_ORDER = {party: i for i, party in enumerate(PARTIES)}


def compare(new: Experiment, old: Experiment, metric: str = "feature_accuracy") -> str:
    """ "beats" when new's interval lies above old's, "below" when under it, else "overlaps"."""
    if lower_bound(new, metric) > upper_bound(old, metric):
        return "beats"
    if upper_bound(new, metric) < lower_bound(old, metric):
        return "below"
    return "overlaps"
