"""The state one resolution walk shares: query levels, visible CTEs, and what it has found.

`WalkState` is the base of `Walker` (walk.py) and of its two halves, the FROM clause
(from_clause.py) and field selections (fields.py); the methods the halves call on each other
are declared here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlglot import exp

from pgmcp.policy.analysis.items import Item, Match, Read
from pgmcp.policy.analysis.model import Access, AccessKind, Analysis
from pgmcp.schema.snapshot import SchemaSnapshot

Outputs = tuple[list[str | None], bool]  # output column names, and whether they are all of them


@dataclass
class Cte:
    index: int
    names: list[str | None]
    complete: bool


@dataclass
class Env:
    """The CTE names visible at one point: one WITH's entries (those before `limit`), then outer ones."""

    ctes: dict[str, Cte]
    limit: int | None
    outer: Env | None

    def find(self, name: str) -> Cte | None:
        env: Env | None = self
        while env is not None:
            cte = env.ctes.get(name)
            if cte is not None and (env.limit is None or cte.index < env.limit):
                return cte
            env = env.outer
        return None


@dataclass
class Level:
    """One query level: its FROM items (namespace) and the level it is nested in."""

    parent: Level | None
    items: list[Item]
    env: Env | None
    outputs: list[str | None] = field(default_factory=list)
    _matches: dict[str, list[Match]] = field(default_factory=dict, repr=False, compare=False)

    def matches(self, name: str) -> list[Match]:
        """What the column name `name` means in each of this level's items that may have it
        (the items do not change once the level exists, so the answer is kept per name)."""
        found = self._matches.get(name)
        if found is None:
            found = self._matches[name] = [m for item in self.items if (m := item.lookup(name)) is not None]
        return found

    def chain(self) -> Iterator[Level]:
        level: Level | None = self
        while level is not None:
            yield level
            level = level.parent


class WalkState:
    """Shared state; see `pgmcp.policy.analysis.walk.Walker`."""

    def __init__(
        self,
        search_path: tuple[str, ...],
        snapshot: SchemaSnapshot | None,
        fences: dict[int, exp.Table] | None = None,
    ) -> None:
        self.search_path = search_path
        self.snapshot = snapshot
        self.fences = fences or {}
        self.out = Analysis()
        self.tables: set[int] = set()  # every Table node the walk accounted for
        self.columns: set[int] = set()  # every Column node the walk resolved

    def query(self, node: exp.Expr, outer: Level | None, env: Env | None) -> Outputs:
        raise NotImplementedError

    def expr(self, node: exp.Expr, level: Level) -> None:
        raise NotImplementedError

    def _values(self, node: exp.Values, outer: Level | None, env: Env | None) -> Outputs:
        raise NotImplementedError

    def _column(self, node: exp.Column, level: Level) -> None:
        raise NotImplementedError

    def _named(self, level: Level, alias: str) -> Item | None:
        for current in level.chain():
            for item in current.items:
                found = item.named(alias)
                if found is not None:
                    return found
        return None

    def _access(self, kind: AccessKind, reads: frozenset[Read], node: exp.Expr, label: str) -> None:
        if reads:
            self.out.accesses.append(Access(kind, reads, node, label))
