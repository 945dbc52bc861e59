"""``obfaudit compare RUN_A RUN_B``: does B leak less, more or the same as A, beyond noise?

Reads the results.json of two audits (or two reproductions) and, for every subject, party,
attack and score they share (F_a, and SSIM for reconstructions), the difference B - A with a
95% bootstrap interval. Where both scored the same test images (the audit's test fingerprint,
or a reproduction's data settings) the bootstrap resamples the images once for both: the
paired interval, much narrower, since the two attacks share most of their errors. Otherwise
each run is resampled on its own, and the output says so. Runs written before per-image scores
were kept fall back to the reported intervals (a normal approximation), also said.

A difference counts only when its interval excludes 0: "less" or "more"; otherwise "same".
The intervals cover which test images were drawn, not the randomness of training an attack:
two audits that differ only in ``--seed`` can differ by more than that (audit with ``--repeats
K`` to see an attack's spread over seeds). Every score both runs have: F_a where an attack reads
the attribute, and SSIM where it rebuilds the image (an image attack has both); an audit's subject
is matched with the other audit's whatever their names. The controls' rows (identity, null) are a
table apart: they say what the attacks could do, not what the subject leaks, and are not counted
in the headline. Runs made with different budgets (epochs, steps, data sizes) are compared with a
warning: their differences may be the budget's. Two split sweeps (``OUT/split.json``) are compared
cut by cut, over the cuts both have.
"""

from __future__ import annotations

import argparse
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from obfaudit.commands._base import Command, Interface, Result, json_option
from obfaudit.errors import ObfauditError
from obfaudit.records import AuditDocument

if TYPE_CHECKING:
    import numpy as np

METRICS = ("feature_accuracy", "ssim")
SHORT = {"feature_accuracy": "F_a", "ssim": "SSIM"}
MARK_START, MARK_END = "<!-- obfaudit compare -->", "<!-- /obfaudit compare -->"
PAIRED, UNPAIRED, APPROXIMATE = "paired", "unpaired", "approximate"
SUBJECT = "(the audited transform)"
HEADER = ("subject", "party", "attack", "score", "A", "B", "B - A [95%]", "B leaks", "pairing")
#: The settings of an audit that decide how hard its attacks try (a reproduction: its preset).
BUDGET = ("budget", "epochs", "min_steps", "n_train", "n_test", "n_proxy", "n_tsne", "repeats", "attack_nets")


@dataclass(frozen=True)
class Run:
    """One results.json: its rows keyed by (dataset, subject, attack) and which test images it scored."""

    path: Path
    doc: dict
    rows: dict[tuple, dict]
    audit: AuditDocument | None = None
    """An audit's document, typed (None for a reproduction's results)."""

    def test_images(self, dataset: str | None) -> str | None:
        """What identifies the test images a row of ``dataset`` was scored on (None: unknown)."""
        if self.audit is not None:
            return self.audit.dataset.get("test_fingerprint")
        cfg = self.doc.get("config") or {}
        preset = cfg.get("preset") or {}
        keys = ("full_mnist", "n_test", "size")
        return json.dumps([dataset, cfg.get("seed"), *(preset.get(k) for k in keys)])


def load_run(path: str | Path) -> Run:
    """A run from its directory or its results.json."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ObfauditError(f"{path}: no results.json (give an audit's or a reproduction's --out)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ObfauditError(f"{file}: not readable JSON ({e})") from None
    if not isinstance(doc, dict) or not ({"obfaudit_audit", "obfaudit_results"} & set(doc)):
        raise ObfauditError(f"{file}: not the results of an obfaudit audit or reproduction")
    audit = None
    if AuditDocument.FORMAT in doc:
        try:
            audit = AuditDocument.from_dict(doc)
        except (TypeError, ValueError, KeyError) as e:
            raise ObfauditError(f"{file}: not the results of an obfaudit audit ({e})") from None
    main = audit.subject if audit is not None else None
    rows = {
        # an audit's subject is matched with the other audit's, whatever their names (null against identity)
        (
            e.get("dataset"),
            SUBJECT if main and e.get("subject") == main else e.get("subject"),
            e.get("attack"),
        ): e
        for e in doc.get("experiments", [])
        if e.get("kind") in ("attack", "control") and e.get("attack")
    }
    return Run(file.parent, doc, rows, audit)


def _per_image(metrics: dict, metric: str) -> np.ndarray | None:
    import numpy as np

    from obfaudit.attacks.uncertainty import unpack_correct

    per = metrics.get("per_image") or {}
    if metric not in per:
        return None
    if metric == "feature_accuracy":
        return unpack_correct(per[metric], int(per["n"]))
    return np.asarray(per[metric], dtype=np.float64)


def difference(
    a: dict, b: dict, metric: str, *, paired: bool, seed: int = 0, resamples: int = 2000
) -> tuple[float, list[float], str]:
    """B - A of ``metric``, its 95% interval and how it was made (paired, unpaired, approximate)."""
    import numpy as np

    d = float(b[metric]) - float(a[metric])
    va, vb = _per_image(a, metric), _per_image(b, metric)
    rng = np.random.default_rng(seed)
    if va is not None and vb is not None:
        if paired and len(va) == len(vb):
            idx = rng.integers(0, len(va), size=(resamples, len(va)))
            means = (vb - va)[idx].mean(axis=1)
            method = PAIRED
        else:
            ia = rng.integers(0, len(va), size=(resamples, len(va)))
            ib = rng.integers(0, len(vb), size=(resamples, len(vb)))
            means = vb[ib].mean(axis=1) - va[ia].mean(axis=1)
            method = UNPAIRED
        lo, hi = np.percentile(means, [2.5, 97.5])
        return d, [float(lo), float(hi)], method
    ca, cb = a.get(f"{metric}_ci"), b.get(f"{metric}_ci")
    if not ca or not cb:  # nothing to tell noise from a difference
        return d, None, APPROXIMATE
    sd = math.hypot((ca[1] - ca[0]) / 3.92, (cb[1] - cb[0]) / 3.92)
    return d, [d - 1.96 * sd, d + 1.96 * sd], APPROXIMATE


def says(ci: list[float] | None) -> str:
    """What an interval of B - A says of B's leakage ("unknown" without one)."""
    if ci is None:
        return "unknown"
    return "less" if ci[1] < 0 else "more" if ci[0] > 0 else "same"


@dataclass
class Comparison(Result):
    """Per shared (subject, party, attack, score): A, B, B - A with its interval, and what it says."""

    a: str
    b: str
    rows: list[dict] = field(default_factory=list)
    """The subject's rows (a sweep's: each cut's), then the controls' (``control`` true)."""
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    embedded: str | None = None
    budgets: list[str] = field(default_factory=list)
    """The budget settings in which the runs differ ("epochs: 15 / 5"); empty when they agree."""

    @property
    def subject_rows(self) -> list[dict]:
        return [r for r in self.rows if not r.get("control")]

    @property
    def control_rows(self) -> list[dict]:
        return [r for r in self.rows if r.get("control")]

    def counts(self) -> dict[str, int]:
        """What the subject's rows say (the controls' are not counted)."""
        return {k: sum(r["says"] == k for r in self.subject_rows) for k in ("less", "same", "more")}

    @staticmethod
    def table(rows: list[dict]) -> list[str]:
        """``rows`` as an aligned table."""
        table = [HEADER, *(_cells(r) for r in rows)]
        widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
        return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]

    def lines(self) -> list[str]:
        """The subject's rows as an aligned table."""
        return self.table(self.subject_rows)

    def budget_warning(self) -> str | None:
        if not self.budgets:
            return None
        return (
            f"warning: the runs used different budgets ({'; '.join(self.budgets)}): a difference may be the "
            "budget's, not the transform's"
        )

    def summary(self) -> str:
        c = self.counts()
        head = (
            f"B = {self.b} against A = {self.a}: B leaks less on {c['less']}, the same on {c['same']}, more "
            f"on {c['more']} of {len(self.subject_rows)} scores (a difference counts when its 95% interval"
            " excludes 0)"
        )
        out = [head]
        if self.budget_warning():
            out.append(self.budget_warning())
        out += ["", *self.lines()]
        if self.control_rows:
            out += ["", "the controls (what the attacks can read at all; not counted above):"]
            out += self.table(self.control_rows)
        methods = {r["method"] for r in self.rows}
        if UNPAIRED in methods:
            out.append("unpaired: the runs did not score the same test images; each was resampled on its own")
        if APPROXIMATE in methods:
            out.append("approximate: a run without per-image scores; the reported intervals were combined")
        for name, keys in (("A", self.only_in_a), ("B", self.only_in_b)):
            if keys:
                out.append(f"only in {name}: {', '.join(keys)}")
        if self.embedded:
            out.append(f"embedded in {self.embedded}")
        return "\n".join(out)


def _budget(run: Run) -> dict:
    if run.audit is not None:
        settings = run.audit.settings
        return {k: settings.get(k) for k in BUDGET if k in settings}
    preset = dict((run.doc.get("config") or {}).get("preset") or {})
    preset.pop("name", None)
    return preset


def budget_differences(a: Run, b: Run) -> list[str]:
    """The budget settings in which ``a`` and ``b`` differ, as "name: A / B"."""
    ba, bb = _budget(a), _budget(b)
    return [f"{k}: {ba.get(k)} / {bb.get(k)}" for k in dict.fromkeys([*ba, *bb]) if ba.get(k) != bb.get(k)]


def _rows(a: Run, b: Run, *, cut: str | None = None) -> list[dict]:
    """A row per score both runs have for each (dataset, subject, attack) they share."""
    rows = []
    for key in (k for k in b.rows if k in a.rows):
        ra, rb = a.rows[key], b.rows[key]
        ma, mb = ra.get("metrics") or {}, rb.get("metrics") or {}
        same_images = a.test_images(key[0]) is not None and a.test_images(key[0]) == b.test_images(key[0])
        subject = key[1]
        if subject == SUBJECT:
            names = dict.fromkeys(
                (a.audit.subject if a.audit else None, b.audit.subject if b.audit else None)
            )
            subject = cut or " -> ".join(str(n) for n in names)
        elif "obfaudit_results" in b.doc and key[0]:  # a reproduction audits ObfNets on several datasets
            subject = f"{key[0]}: {subject}"
        for metric in (m for m in METRICS if ma.get(m) is not None and mb.get(m) is not None):
            d, ci, method = difference(ma, mb, metric, paired=same_images)
            rows.append(
                {
                    "dataset": key[0],
                    "subject": subject,
                    "attack": key[2],
                    "party": rb.get("party"),
                    "control": rb.get("kind") == "control",
                    "metric": metric,
                    "a": float(ma[metric]),
                    "b": float(mb[metric]),
                    "difference": d,
                    "ci": ci,
                    "method": method,
                    "says": says(ci),
                }
            )
    return rows


def _name(key: tuple) -> str:
    return "/".join(str(x) for x in key[1:])


def _sweep(path: Path) -> dict | None:
    """A split sweep's split.json (None: not a sweep)."""
    file = path / "split.json" if path.is_dir() else path
    if file.name != "split.json" or not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ObfauditError(f"{file}: not readable JSON ({e})") from None


def _cut_folders(path: Path, sweep: dict) -> dict[str, Path]:
    """A sweep's cuts, each with the folder of its own audit (OUT/<folder>/)."""
    from obfaudit.audit.split import safe_node

    root = path if path.is_dir() else path.parent
    return {c["node"]: root / (c.get("folder") or safe_node(c["node"])) for c in sweep.get("cuts", [])}


def compare_sweeps(path_a: Path, path_b: Path, sweep_a: dict, sweep_b: dict) -> Comparison:
    """Two split sweeps cut by cut: each shared cut's subject rows, and the shared controls once."""
    folders_a, folders_b = _cut_folders(path_a, sweep_a), _cut_folders(path_b, sweep_b)
    shared = [n for n in folders_b if n in folders_a]
    if not shared:
        raise ObfauditError(f"{path_a} and {path_b} share no cut: compare sweeps of the same model's nodes")
    cuts_a = {n: load_run(folders_a[n]) for n in shared}
    cuts_b = {n: load_run(folders_b[n]) for n in shared}
    rows, controls = [], {}
    for node in shared:
        for r in _rows(cuts_a[node], cuts_b[node], cut=node):
            if r["control"]:  # every cut shares them: once
                controls.setdefault((r["subject"], r["attack"], r["metric"]), r)
            else:
                rows.append(r)
    if not rows:
        raise ObfauditError(f"{path_a} and {path_b} share cuts but no (attack, score) in them")
    return Comparison(
        str(path_a),
        str(path_b),
        rows + list(controls.values()),
        only_in_a=[f"cut {n}" for n in folders_a if n not in folders_b],
        only_in_b=[f"cut {n}" for n in folders_b if n not in folders_a],
        budgets=budget_differences(cuts_a[shared[0]], cuts_b[shared[0]]),
    )


def compare(path_a: str | Path, path_b: str | Path, *, embed: bool = False) -> Comparison:
    """Compare run B with run A (see the module docstring); ``embed`` adds the table to B's report.html."""
    path_a, path_b = Path(path_a), Path(path_b)
    sweep_a, sweep_b = _sweep(path_a), _sweep(path_b)
    if (sweep_a is None) != (sweep_b is None):
        which = path_a if sweep_a is not None else path_b
        raise ObfauditError(
            f"{which} is a split sweep and the other run is not: compare two sweeps, or a cut's own "
            "directory with an audit"
        )
    if sweep_a is not None:
        result = compare_sweeps(path_a, path_b, sweep_a, sweep_b)
        root_b = path_b if path_b.is_dir() else path_b.parent
    else:
        a, b = load_run(path_a), load_run(path_b)
        rows = _rows(a, b)
        if not rows:
            raise ObfauditError(
                f"{path_a} and {path_b} share no (subject, attack): compare audits of the same kind of "
                "subject"
            )
        result = Comparison(
            str(a.path),
            str(b.path),
            [r for r in rows if not r["control"]] + [r for r in rows if r["control"]],
            only_in_a=[_name(k) for k in a.rows if k not in b.rows],
            only_in_b=[_name(k) for k in b.rows if k not in a.rows],
            budgets=budget_differences(a, b),
        )
        root_b = b.path
    if embed:
        result.embedded = str(embed_in_report(root_b / "report.html", result))
    return result


def embed_in_report(page: Path, comparison: Comparison) -> Path:
    """Put the comparison into ``page`` (B's report) as its own section, replacing an earlier one."""
    from obfaudit._io import atomic_write_text

    try:
        text = page.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ObfauditError(f"{page}: no report to embed the comparison in") from None
    c = comparison.counts()
    rows = "\n".join(
        "<tr>" + "".join(f'<td class="l">{html.escape(cell)}</td>' for cell in _cells(r)) + "</tr>"
        for r in comparison.subject_rows
    )
    control_rows = "\n".join(
        "<tr>" + "".join(f'<td class="l">{html.escape(cell)}</td>' for cell in _cells(r)) + "</tr>"
        for r in comparison.control_rows
    )
    warning = comparison.budget_warning()
    section = (
        f'{MARK_START}\n<h2 id="compare">Compared with {html.escape(comparison.a)}</h2>\n'
        f"<p>Against that run, this one leaks less on {c['less']}, the same on {c['same']} and more on "
        f"{c['more']} of {len(comparison.subject_rows)} scores; a difference counts when its 95% bootstrap "
        "interval excludes 0 (paired: over the same test images).</p>\n"
        + (f"<p><b>{html.escape(warning)}</b></p>\n" if warning else "")
        + "<table><tr>"
        + "".join(
            f'<th class="l">{h}</th>'
            for h in (
                "subject",
                "party",
                "attack",
                "score",
                "A",
                "this run (B)",
                "B - A [95%]",
                "B leaks",
                "pairing",
            )
        )
        + f"</tr>\n{rows}\n"
        + (
            '<tr><th class="l" colspan="9">the controls: what the attacks can read at all (not counted above)'
            f"</th></tr>\n{control_rows}\n"
            if control_rows
            else ""
        )
        + f"</table>\n{MARK_END}\n"
    )
    if MARK_START in text and MARK_END in text:
        start, end = text.index(MARK_START), text.index(MARK_END) + len(MARK_END) + 1
        text = text[:start] + section + text[end:]
    elif "</body>" in text:
        text = text.replace("</body>", section + "</body>", 1)
    else:
        text += section
    atomic_write_text(page, text)
    return page


def _cells(r: dict) -> list[str]:
    pct = r["metric"] == "feature_accuracy"
    v = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    d = (lambda x: f"{100 * x:+.1f}") if pct else (lambda x: f"{x:+.3f}")
    return [
        r["subject"],
        str(r["party"]),
        r["attack"],
        SHORT[r["metric"]],
        v(r["a"]),
        v(r["b"]),
        f"{d(r['difference'])} [{d(r['ci'][0])}, {d(r['ci'][1])}]"
        if r["ci"]
        else f"{d(r['difference'])} [no interval]",
        r["says"],
        r["method"],
    ]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_a", type=Path, metavar="RUN_A", help="the run to compare with (its --out or results.json)"
    )
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="the run compared (its --out or results.json)")
    p.add_argument(
        "--embed",
        action="store_true",
        help="also add the comparison to RUN_B's report.html, as a section of its own",
    )
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    return compare(args.run_a, args.run_b, embed=args.embed)


COMMAND = Command(
    "compare",
    "does run B leak less, more or the same as run A, beyond noise",
    "Compare two audits (or two reproductions): per subject, party, attack and score, B - A with a 95% "
    "bootstrap interval (paired over the same test images where both scored them); a difference counts "
    "only when its interval excludes 0.",
    add_arguments,
    run,
)
