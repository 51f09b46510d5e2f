"""What the runtime's read operations hand back: plain values, no MCP (`pgmcp.mcp.tools` turns
them into the tools' typed outputs)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pgmcp.schema.snapshot import SchemaSnapshot


@dataclasses.dataclass(frozen=True)
class DatabaseView:
    """One configured database as callers see it: what it is, its policy in a line, its state."""

    name: str
    description: str
    policy: str
    status: str


@dataclasses.dataclass(frozen=True)
class SchemaView:
    """The policy-filtered description of (part of) one database's schema."""

    database: str
    description: dict[str, Any]  # `pgmcp.schema.filtered.describe` of the visible snapshot
    age_seconds: float | None
    suggestions: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # unknown name -> did you mean


@dataclasses.dataclass(frozen=True)
class Refreshed:
    """The outcome of a schema refresh: the snapshot served now, and whether it is the old one."""

    database: str
    snapshot: SchemaSnapshot
    stale: bool
    message: str
