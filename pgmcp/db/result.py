"""What running one statement gives back: `QueryResult`, its `Column`s and rows (JSON-safe).

A value module of its own, apart from the executor that produces it: the pipeline, the CLI and
the MCP layer read results without importing the executor (pools, asyncpg). It stays in `db/`
because the database layer makes it and every reader sits above that layer; putting it in
`ask/` would make `db/` import upwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgmcp.db.serialize import JsonValue
from pgmcp.policy.verdict import Verdict


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # PostgreSQL type name as asyncpg reports it ("int4", "text[]", "mood", ...)


@dataclass(frozen=True)
class QueryResult:
    """The rows of one executed statement, JSON-safe, and how they were cut."""

    database: str
    sql: str  # exactly what ran (the checked, possibly rewritten, text)
    columns: tuple[Column, ...]
    rows: list[list[JsonValue]]
    row_count: int
    truncated: bool
    truncated_reason: str | None
    verdict: Verdict
    elapsed_ms: float
    rows_fetched: int = 0  # rows read from the server (at most max_rows + 1)
    rows_json: bytes | None = None  # `rows` as the compact JSON array they were encoded to

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "sql": self.sql,
            "columns": [{"name": c.name, "type": c.type} for c in self.columns],
            "rows": self.rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "truncated_reason": self.truncated_reason,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }
