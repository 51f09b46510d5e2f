"""Running a policy's `tests:` list: each example judged by the real checker, as values.

Pure, like the rest of `pgmcp.policy`: `run_test` judges one `PolicyTest` with a compiled
policy (and a schema snapshot when one is known) and says whether the verdict, and the rule
codes, are the expected ones. Expected `rows:` need a database; the caller executes the
checked SQL and hands the rows to `compare_rows`. `pgmcp policy test` prints the results;
other tools (CI, a policy editor) can reuse them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.spec import PolicyTest
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.snapshot import SchemaSnapshot

Row = tuple[object, ...]
SQL_WIDTH = 60  # characters of SQL shown on a PASS/FAIL line


@dataclass(frozen=True)
class TestOutcome:
    """One test's result: the verdict, whether it matched, and what did not."""

    test: PolicyTest
    verdict: Verdict
    problems: tuple[str, ...] = ()
    rows_checked: bool = False  # the expected rows were compared with real ones

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def needs_rows(self) -> bool:
        """True when the test expects rows and the verdict allows running the SQL."""
        return self.test.rows is not None and self.verdict.allowed and self.test.expect == "allow"


def run_test(test: PolicyTest, policy: CompiledPolicy, snapshot: SchemaSnapshot | None = None) -> TestOutcome:
    """Judge `test.sql` with the real checker and compare with `expect` and `rules`.

    `rules` lists codes (PGM301) or names (column-denied) that must all be among the
    violations of a denied statement; for an allowed one they are looked for in the trace
    (so `rules: [PGM501]` says "allowed, with the row cap rewritten in").
    """
    verdict = check(test.sql, policy, snapshot)
    problems: list[str] = []
    got = "allow" if verdict.allowed else "deny"
    if got != test.expect:
        why = f": {verdict.reason()}" if verdict.violations else ""
        problems.append(f"expected {test.expect}, got {got}{why}")
    if test.rules:
        seen = _rules_seen(verdict)
        missing = [r for r in test.rules if r not in seen]
        if missing:
            shown = ", ".join(sorted({c for c in seen if c.startswith("PGM") and c[3:].isdigit()})) or "none"
            problems.append(f"expected rule(s) {', '.join(missing)} not reported (reported: {shown})")
    return TestOutcome(test, verdict, tuple(problems))


def _rules_seen(verdict: Verdict) -> set[str]:
    seen: set[str] = set()
    for v in verdict.violations:
        seen.update((v.rule, v.name))
    if verdict.allowed:
        for entry in verdict.trace:
            seen.update((entry.rule, entry.name))
    return seen


def compare_rows(outcome: TestOutcome, actual: Sequence[Row]) -> TestOutcome:
    """`outcome` with the real rows compared to the expected ones (order ignored).

    Values are compared by meaning, not by Python type: 12.5 matches Decimal('12.50'), a
    YAML date matches a PostgreSQL date, anything else compares as text.
    """
    expected = list(outcome.test.rows or ())
    problems = list(outcome.problems)
    want, got = Counter(map(_normal_row, expected)), Counter(map(_normal_row, actual))
    if want != got:
        lacking, extra = want - got, got - want
        detail = f"expected {len(expected)} row(s), got {len(actual)}"
        if lacking:
            detail += f"; missing {_rows_text([r for r in expected if _normal_row(r) in lacking])}"
        if extra:
            detail += f"; unexpected {_rows_text([r for r in actual if _normal_row(r) in extra])}"
        problems.append(detail)
    return dataclasses.replace(outcome, problems=tuple(problems), rows_checked=True)


def _rows_text(rows: Sequence[Sequence[object]], limit: int = 3) -> str:
    shown = ", ".join(_row_text(r) for r in rows[:limit])
    return shown + (f" (+{len(rows) - limit} more)" if len(rows) > limit else "")


def _row_text(row: Sequence[object]) -> str:
    return "[" + ", ".join("null" if v is None else str(v) for v in row) + "]"


def _normal_row(row: Sequence[object]) -> Row:
    return tuple(_normal(v) for v in row)


def _normal(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        try:
            return ("number", str(Decimal(str(value)).normalize()))
        except InvalidOperation:  # nan, inf
            return ("number", str(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return ("text", value.isoformat())
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return ("text", str(value))


def outcome_line(outcome: TestOutcome, where: str) -> str:
    """`PASS policies/demo.yaml:34 SELECT ... -> deny [PGM301]`."""
    verdict = outcome.verdict
    status = "PASS" if outcome.passed else "FAIL"
    got = "allow" if verdict.allowed else "deny"
    codes = list(dict.fromkeys(v.rule for v in verdict.violations))
    shown = f" [{', '.join(codes)}]" if codes else ""
    rows = " (rows checked)" if outcome.rows_checked else ""
    return f"{status} {where} {short_sql(outcome.test.sql)} -> {got}{shown}{rows}"


def short_sql(sql: str, width: int = SQL_WIDTH) -> str:
    """The SQL on one line, cut at `width` characters."""
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 3].rstrip() + "..."


def summary_line(outcomes: Sequence[TestOutcome]) -> str:
    """The final line, exactly `N passed, N failed`."""
    passed = sum(1 for o in outcomes if o.passed)
    return f"{passed} passed, {len(outcomes) - passed} failed"
