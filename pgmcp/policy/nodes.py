"""The one walk over a parsed statement's tree: its depth, and the nodes every later stage reads.

Each stage used to find its own nodes with `find_all` (write nodes, relations, columns, calls,
type references): a walk over the whole tree each, several per statement, plus one for the
depth. `index` walks the tree once, level by level (breadth first, the order of `find_all`),
and sorts the nodes into the lists below, each in that order. A node's roles are decided once
per class (`issubclass`), not per node.

The lists stay valid while the tree's structure does: the resolution pass only rewrites the
identifiers inside relation references. The row-filter and row-cap rewrite changes the tree,
and its text is parsed (and indexed) again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

MAX_TREE_DEPTH = 400

# Statement nodes that must not appear anywhere in a read query.
WRITE_NODES: tuple[type[exp.Expr], ...] = (
    exp.DML,
    exp.DDL,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Set,
    exp.Grant,
    exp.Revoke,
    exp.TruncateTable,
    exp.Comment,
    exp.Analyze,
    exp.Use,
    exp.Refresh,
    exp.Cache,
    exp.Uncache,
    exp.LoadData,
    exp.Describe,
    exp.Pragma,
    exp.Kill,
    exp.Show,
    exp.Execute,
    exp.Declare,
    exp.Install,
    exp.Attach,
    exp.Detach,
    exp.Export,
)
FLAGGED_NODES: tuple[type[exp.Expr], ...] = (exp.Into, exp.Lock, exp.With, *WRITE_NODES)

_FLAGGED, _TABLE, _COLUMN, _CALL, _TYPE = 1, 2, 4, 8, 16


@dataclass
class Nodes:
    """The nodes of one tree the stages read, each list in breadth-first order."""

    depth: int = 0  # stops counting past MAX_TREE_DEPTH (the lists are then incomplete)
    flagged: list[exp.Expr] = field(default_factory=list)  # FLAGGED_NODES: writes, INTO, locks, WITH
    tables: list[exp.Table] = field(default_factory=list)
    columns: list[exp.Column] = field(default_factory=list)
    calls: list[exp.Expr] = field(default_factory=list)  # exp.Func and exp.Dot (attribute notation)
    types: list[exp.Expr] = field(default_factory=list)  # exp.DataType, exp.Cast, exp.Anonymous


_ROLES: dict[type, int] = {}


def _role(cls: type) -> int:
    role = 0
    if issubclass(cls, FLAGGED_NODES):
        role |= _FLAGGED
    if issubclass(cls, exp.Table):
        role |= _TABLE
    if issubclass(cls, exp.Column):
        role |= _COLUMN
    if issubclass(cls, (exp.Func, exp.Dot)):
        role |= _CALL
    if issubclass(cls, (exp.DataType, exp.Cast, exp.Anonymous)):
        role |= _TYPE
    return role


def index(tree: exp.Expr) -> Nodes:
    """Walk `tree` once (iteratively: no recursion however deep) and sort out its nodes."""
    out = Nodes()
    roles = _ROLES
    level: list[exp.Expr] = [tree]
    while level:
        out.depth += 1
        if out.depth > MAX_TREE_DEPTH:
            return out
        below: list[exp.Expr] = []
        extend = below.extend
        for node in level:
            cls = node.__class__
            role = roles.get(cls)
            if role is None:
                role = roles[cls] = _role(cls)
            if role:
                if role & _FLAGGED:
                    out.flagged.append(node)
                if role & _TABLE:
                    out.tables.append(node)  # type: ignore[arg-type]
                if role & _COLUMN:
                    out.columns.append(node)  # type: ignore[arg-type]
                if role & _CALL:
                    out.calls.append(node)
                if role & _TYPE:
                    out.types.append(node)
            extend(node.iter_expressions())
        level = below
    return out
