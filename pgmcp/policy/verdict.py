"""What the checker says about one statement: a `Verdict` holding `Violation` values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgmcp.errors import SourceLocation


@dataclass(frozen=True)
class Violation:
    """One reason a statement is refused.

    `rule` is the stable code (`PGM301`), `name` its kebab-case name (`column-denied`),
    `message` says what is wrong and what to change, `line`/`column` point into the SQL
    (1-based; None when the whole statement is meant), and `source` names the policy file,
    line and key of the deciding rule (None for the engine's built-in rules).
    """

    rule: str
    name: str
    message: str
    line: int | None = None
    column: int | None = None
    source: SourceLocation | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "name": self.name,
            "message": self.message,
            "line": self.line,
            "column": self.column,
        }
        if self.source is not None:
            out["source"] = {
                "file": self.source.file,
                "line": self.source.line,
                "key": self.source.key_path,
            }
        return out


@dataclass(frozen=True)
class TraceEntry:
    """One rule that matched while judging a statement (for `explain-policy`)."""

    rule: str
    name: str
    effect: str  # "allow" | "deny" | "rewrite" | "info"
    detail: str
    source: SourceLocation | None = None


@dataclass(frozen=True)
class Verdict:
    """The decision on one SQL statement.

    `rewritten_sql` is set when the policy rewrote the statement (row filters, row cap,
    resolved names); what runs is `executable_sql`, and it has been checked again.
    """

    sql: str
    allowed: bool
    violations: tuple[Violation, ...] = ()
    rewritten_sql: str | None = None
    statement_kind: str | None = None  # "select" | "explain"
    relations: tuple[str, ...] = ()  # resolved schema.name of every relation read
    functions: tuple[str, ...] = ()  # resolved schema.name of every function called
    trace: tuple[TraceEntry, ...] = field(default=(), compare=False)
    # The policy's row cap when the checker wrote it into the SQL (PGM501): a result of exactly
    # this many rows may have been cut.
    row_cap: int | None = None

    @property
    def executable_sql(self) -> str:
        return self.rewritten_sql if self.rewritten_sql is not None else self.sql

    def reason(self) -> str:
        """All violations as one text a model or a person can act on."""
        return "; ".join(f"{v.rule} {v.name}: {v.message}" for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "violations": [v.to_dict() for v in self.violations],
        }
        if self.rewritten_sql is not None:
            out["rewritten_sql"] = self.rewritten_sql
        return out
