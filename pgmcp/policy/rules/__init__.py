"""The rule table: every violation code pgmcp emits, its kebab-case name and what it means.

Each rule family lives in its own module (`statements`, `relations`, `functions`, `columns`,
`limits`) as small pure functions over a `CheckContext`; this table is the single source of
codes and names, used by the checker, the docs and `tests/rules/*.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgmcp.errors import SourceLocation
from pgmcp.policy.verdict import Violation


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("PGM001", "parse-error", "the SQL could not be parsed"),
        Rule("PGM002", "multiple-statements", "more than one statement was given"),
        Rule("PGM003", "unsupported-syntax", "the statement is of a kind the engine cannot classify"),
        Rule("PGM004", "unicode-escape", 'U&"..." identifiers with unicode escapes are refused'),
        Rule("PGM005", "reserved-identifier", "identifiers starting with _pgmcp_ are reserved"),
        Rule("PGM006", "too-deep", "the statement is nested too deeply to be checked"),
        Rule("PGM101", "statement-not-allowed", "the statement kind is not allowed by the policy"),
        Rule("PGM102", "write-in-tree", "a write, DDL or utility statement appears inside the query"),
        Rule("PGM103", "select-into", "SELECT ... INTO creates a table"),
        Rule("PGM104", "row-locking", "FOR UPDATE/SHARE takes row locks"),
        Rule("PGM105", "explain-not-allowed", "EXPLAIN is not allowed by the policy"),
        Rule("PGM106", "explain-analyze-not-allowed", "EXPLAIN ANALYZE executes the statement"),
        Rule("PGM201", "table-denied", "a relation is denied by a policy rule"),
        Rule("PGM202", "table-not-allowed", "a relation is not matched by any allow rule"),
        Rule("PGM203", "unresolvable-table", "a relation reference could not be resolved"),
        Rule("PGM204", "view-reads-denied", "a view reads a denied relation"),
        Rule("PGM301", "column-denied", "a column is denied by a policy rule"),
        Rule("PGM302", "star-unprovable", "a * cannot be expanded to prove no denied column is read"),
        Rule("PGM303", "whole-row-reference", "a whole-row reference reads every column"),
        Rule("PGM304", "column-unknown", "a column the live schema does not know, where columns are restricted"),
        Rule("PGM401", "function-dangerous", "the function is in the built-in dangerous set"),
        Rule("PGM402", "function-denied", "the function is denied by a policy rule"),
        Rule("PGM403", "function-unknown", "the function is neither built-in safe nor allowed"),
        Rule("PGM501", "limit-rewritten", "the row cap was enforced by rewriting (info)"),
        Rule("PGM502", "row-filter-failed", "a row filter could not be applied"),
    )
}


def violation(
    code: str,
    message: str,
    line: int | None = None,
    column: int | None = None,
    *,
    source: SourceLocation | None = None,
) -> Violation:
    """A `Violation` for rule `code`, with the rule's registered name."""
    return Violation(code, RULES[code].name, message, line, column, source)
