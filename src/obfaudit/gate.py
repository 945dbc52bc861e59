"""A privacy gate for CI: fail a build when an audit finds a party's verdict at or beyond a level.

``obfaudit audit ... --fail-on compromised|inconclusive`` writes every result first, then exits
with :data:`EXIT_GATE` (3) when any party's verdict (the strongest of its attacks, a "not
compromised" counted only from attacks calibrated by the identity control) is at or beyond the
level: ``compromised`` fails on a leak proven by its interval, ``inconclusive`` also on a leak
that could not be ruled out. ``--junit FILE`` writes one JUnit test case per party, which CI
systems (GitHub Actions reporters, GitLab, Jenkins) display; a case fails when its party
reaches the level (``compromised`` without ``--fail-on``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from obfaudit.records import COMPROMISED, INCONCLUSIVE, PartyVerdict
from obfaudit.threat import Verdict

EXIT_GATE = 3
"""The exit status of an audit whose verdict reached ``--fail-on`` (1 is an error, 2 bad arguments)."""
FAIL_ON = (COMPROMISED, INCONCLUSIVE)


#: Whether a verdict is at or beyond a level (no verdict counts as inconclusive).
reaches = Verdict.reaches


def failing(parties: Sequence[PartyVerdict], level: str | None) -> list[PartyVerdict]:
    """The parties whose verdict reaches ``level`` (none when no level is set)."""
    return [p for p in parties if level and reaches(p.verdict, level)]


def party_table(parties: Sequence[PartyVerdict]) -> list[str]:
    """The parties as aligned lines: party, verdict, strongest attack and its score with interval."""
    rows = [("party", "verdict", "strongest attack", "score [95% interval]")] + [
        (str(p.party), str(p.verdict or "no verdict"), p.strongest, p.score) for p in parties
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows]


def write_junit(
    path: str | Path,
    subject: str,
    parties: Sequence[PartyVerdict],
    level: str | None,
    *,
    report: str | None = None,
) -> Path:
    """One JUnit test suite for the audit of ``subject``, one test case per party; a case fails when its
    party's verdict reaches ``level`` (``compromised`` when None)."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    level = level or COMPROMISED
    suite = TestSuite(f"obfaudit audit: {subject}")
    suite.add_property("fail_on", level)
    if report:
        suite.add_property("report", str(report))
    for p in parties:
        case = TestCase(f"{p.party} learns nothing of the attribute", classname=f"obfaudit.{subject}")
        case.system_out = (
            f"verdict: {p.verdict or 'no verdict'}; strongest attack: {p.strongest}, {p.score}; "
            f"{p.attacks} attack(s)"
        )
        if reaches(p.verdict, level):
            case.result = [
                Failure(
                    f"{p.party}: {p.verdict or 'no verdict'} ({p.strongest}: {p.score})",
                    type_=str(p.verdict or "none"),
                )
            ]
        suite.add_testcase(case)
    suite.update_statistics()
    xml = JUnitXml()
    xml.add_testsuite(suite)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
    return path
