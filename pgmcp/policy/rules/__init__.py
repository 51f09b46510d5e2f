"""The rule table: every violation code pgmcp emits, its kebab-case name and what it means.

Each rule family lives in its own module (`statements`, `relations`, `types`, `functions`,
`columns`, `limits`) as small pure functions over the checker's `Context`; this table is the
single source of codes and names, used by the checker, the docs and `tests/rules/*.yaml`.
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


# Every rule, declared once: code the constant's name, then its kebab-case name and summary.
# A mistyped code is a NameError at import, never a refusal at run time.
PGM001 = Rule("PGM001", "parse-error", "the SQL could not be parsed")
PGM002 = Rule("PGM002", "multiple-statements", "more than one statement was given")
PGM003 = Rule("PGM003", "unsupported-syntax", "the statement is of a kind the engine cannot classify")
PGM004 = Rule("PGM004", "unicode-escape", 'U&"..." identifiers with unicode escapes are refused')
PGM005 = Rule("PGM005", "reserved-identifier", "identifiers starting with _pgmcp_ are reserved")
PGM006 = Rule("PGM006", "too-deep", "the statement is nested too deeply to be checked")
PGM007 = Rule("PGM007", "statement-too-large", "the statement is longer than limits.max_sql_bytes")
PGM101 = Rule("PGM101", "statement-not-allowed", "the statement kind is not allowed by the policy")
PGM102 = Rule("PGM102", "write-in-tree", "a write, DDL or utility statement appears inside the query")
PGM103 = Rule("PGM103", "select-into", "SELECT ... INTO creates a table")
PGM104 = Rule("PGM104", "row-locking", "FOR UPDATE/SHARE takes row locks")
PGM105 = Rule("PGM105", "explain-not-allowed", "EXPLAIN is not allowed by the policy")
PGM106 = Rule("PGM106", "explain-analyze-not-allowed", "EXPLAIN ANALYZE executes the statement")
PGM201 = Rule("PGM201", "table-denied", "a relation is denied by a policy rule")
PGM202 = Rule("PGM202", "table-not-allowed", "a relation is not matched by any allow rule")
PGM203 = Rule("PGM203", "unresolvable-table", "a relation reference could not be resolved")
PGM204 = Rule("PGM204", "view-reads-denied", "a view reads a denied relation")
PGM205 = Rule("PGM205", "type-names-hidden-relation", "a cast or type names a relation the policy hides")
PGM301 = Rule("PGM301", "column-denied", "a column is denied by a policy rule")
PGM302 = Rule("PGM302", "star-unprovable", "a * cannot be expanded to prove no denied column is read")
PGM303 = Rule("PGM303", "whole-row-reference", "a whole-row reference reads every column")
PGM304 = Rule("PGM304", "column-unknown", "a column the live schema does not know, where columns are restricted")
PGM401 = Rule("PGM401", "function-dangerous", "the function is in the built-in dangerous set")
PGM402 = Rule("PGM402", "function-denied", "the function is denied by a policy rule")
PGM403 = Rule("PGM403", "function-unknown", "the function is neither built-in safe nor allowed")
PGM501 = Rule("PGM501", "limit-rewritten", "the row cap was enforced by rewriting (info)")
PGM502 = Rule("PGM502", "row-filter-failed", "a row filter could not be applied")

RULES: dict[str, Rule] = {r.code: r for r in (
    PGM001,
    PGM002,
    PGM003,
    PGM004,
    PGM005,
    PGM006,
    PGM007,
    PGM101,
    PGM102,
    PGM103,
    PGM104,
    PGM105,
    PGM106,
    PGM201,
    PGM202,
    PGM203,
    PGM204,
    PGM205,
    PGM301,
    PGM302,
    PGM303,
    PGM304,
    PGM401,
    PGM402,
    PGM403,
    PGM501,
    PGM502,
)}


def violation(
    rule: Rule,
    message: str,
    line: int | None = None,
    column: int | None = None,
    *,
    source: SourceLocation | None = None,
) -> Violation:
    """A `Violation` of `rule` (one of the constants above)."""
    return Violation(rule.code, rule.name, message, line, column, source)
