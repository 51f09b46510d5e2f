"""What running one statement gives back: `QueryResult`, its `Column`s and rows (JSON-safe).

A value module of its own, apart from the executor that produces it: the pipeline, the CLI and
the MCP layer read results without importing the executor (pools, asyncpg). It stays in `db/`
because the database layer makes it and every reader sits above that layer; putting it in
`ask/` would make `db/` import upwards.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pgmcp.db.serialize import JsonValue
from pgmcp.policy.verdict import Verdict


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # PostgreSQL type name as asyncpg reports it ("int4", "text[]", "mood", ...)


@dataclass(frozen=True)
class RowsJson:
    """Rows as the compact JSON array they were encoded to, kept in the pieces it was written in:
    each chunk is one or more rows separated by commas, without the brackets. The MCP layer
    writes the chunks to the wire as they are (`pgmcp.mcp.wire`); `bytes(rows_json)` joins them."""

    chunks: Sequence[bytes | memoryview] = ()

    def __bytes__(self) -> bytes:
        return b"[" + b",".join(self.chunks) + b"]"

    def __len__(self) -> int:
        """Bytes of the whole array."""
        return 2 + sum(len(c) for c in self.chunks) + max(0, len(self.chunks) - 1)

    def parse(self) -> list[list[JsonValue]]:
        rows: list[list[JsonValue]] = orjson.loads(bytes(self))
        return rows


@dataclass(frozen=True)
class QueryResult:
    """The rows of one executed statement, JSON-safe, and how they were cut.

    The rows exist as their JSON (`rows_json`, written once); `rows` parses it on first use, so
    a caller that only sends the JSON on (the MCP tools over stdio) never builds them as Python
    values, and the two cannot differ."""

    database: str
    sql: str  # exactly what ran (the checked, possibly rewritten, text)
    columns: tuple[Column, ...]
    rows_json: RowsJson
    row_count: int
    truncated: bool
    truncated_reason: str | None
    verdict: Verdict
    elapsed_ms: float
    rows_fetched: int = 0  # rows read from the server (at most max_rows + 1)

    @functools.cached_property
    def rows(self) -> list[list[JsonValue]]:
        return self.rows_json.parse()

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
