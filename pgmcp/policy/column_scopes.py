"""The scope walk behind `pgmcp.policy.columns.column_reads`.

`analyse` visits every scope of a tree (qualified by sqlglot when a snapshot exists, raw
otherwise) and attributes each column reference to the physical table it reads, following
PostgreSQL's rules: a qualified name names a FROM item of its own query level or of an
enclosing one; an unqualified name belongs to the innermost level where some FROM item has
it. Without a schema, "has it" is only known for derived tables with explicit outputs, so a
name that more than one physical table could own is reported as ambiguous, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

UnprovableKind = Literal["star", "whole_row", "unknown_column", "ambiguous"]
TableKey = tuple[str, str]
Source = exp.Table | Scope


@dataclass(frozen=True, order=True)
class ColumnRef:
    """One physical column read, with the 1-based position of the reference (None if unknown)."""

    schema: str
    table: str
    column: str
    line: int | None = None
    column_pos: int | None = None


@dataclass(frozen=True)
class Unprovable:
    """A read the analysis cannot pin to named columns.

    `tables` are the physical (schema, table) pairs concerned: the tables a star or whole-row
    reference covers, or the candidate owners of an ambiguous name. `column` is the name for
    `ambiguous` (and `unknown_column` when known), None otherwise.
    """

    kind: UnprovableKind
    tables: tuple[TableKey, ...]
    message: str
    column: str | None = None
    line: int | None = None
    column_pos: int | None = None


@dataclass(frozen=True)
class ColumnReads:
    reads: frozenset[ColumnRef]
    unprovable: tuple[Unprovable, ...] = ()

    def columns_of(self, schema: str, table: str) -> frozenset[str]:
        """Names of the columns of one table that the query reads."""
        return frozenset(r.column for r in self.reads if (r.schema, r.table) == (schema, table))


def physical_key(source: object) -> TableKey | None:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier) and source.db:
        return (source.db, source.name)
    return None


def position(node: exp.Expr) -> tuple[int | None, int | None]:
    """1-based (line, start column) of a node from its tokens' meta, or (None, None).

    Token meta holds the line, the 1-based column of the token's *last* character and the
    character offsets. Identifiers that `qualify` copied from elsewhere keep their old meta,
    so a column's table part only counts when it sits right before the column name.
    """
    if isinstance(node, exp.Column):
        name = _meta_start(node.this)
        table = _meta_start(node.args.get("table"))
        if name and table and name[0] == table[0] and 0 < name[2] - table[3] <= 2:
            return table[:2]
        if name:
            return name[:2]
    best: tuple[int, int, int, int] | None = None
    for part in node.walk():
        found = _meta_start(part)
        if found and (best is None or found[:2] < best[:2]):
            best = found
    if best is not None:
        return best[:2]
    select = node.find_ancestor(exp.Select)
    stashed = select.meta.get("pgmcp_star") if select is not None else None
    return stashed if isinstance(stashed, tuple) else (None, None)


def _meta_start(node: object) -> tuple[int, int, int, int] | None:
    """(line, start column, start offset, end offset) of an identifier or star token."""
    if not isinstance(node, (exp.Identifier, exp.Star)):
        return None
    meta = node.meta
    if not meta or "line" not in meta or "col" not in meta:
        return None
    start, end = int(meta.get("start", 0)), int(meta.get("end", 0))
    return (int(meta["line"]), int(meta["col"]) - (end - start), start, end)


@dataclass
class _Collector:
    qualified: bool
    reads: set[ColumnRef] = field(default_factory=set)
    problems: list[Unprovable] = field(default_factory=list)

    def read(self, key: TableKey, column: str, node: exp.Expr) -> None:
        line, col = position(node)
        self.reads.add(ColumnRef(key[0], key[1], column, line, col))

    def problem(
        self, kind: UnprovableKind, tables: list[TableKey], message: str, node: exp.Expr,
        column: str | None = None,
    ) -> None:
        line, col = position(node)
        unique = tuple(dict.fromkeys(tables))
        self.problems.append(Unprovable(kind, unique, message, column, line, col))


def analyse(tree: exp.Expression, *, qualified: bool) -> ColumnReads:
    out = _Collector(qualified)
    try:
        scopes = traverse_scope(tree)
    except SqlglotError as err:
        tables = [k for t in tree.find_all(exp.Table) if (k := physical_key(t))]
        out.problem("unknown_column", tables, f"cannot walk the query's scopes: {err}", tree)
        return ColumnReads(frozenset(), tuple(out.problems))
    seen: set[int] = set()
    for scope in scopes:
        for node in scope.walk():
            if id(node) in seen:
                continue
            seen.add(id(node))
            _visit(node, scope, out)
    return ColumnReads(frozenset(out.reads), tuple(out.problems))


def _visit(node: exp.Expr, scope: Scope, out: _Collector) -> None:
    if isinstance(node, exp.TableColumn):
        _whole_row(_lookup(scope, node.name), node.name, node, out)
    elif isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
        source = _lookup(scope, node.table)
        if _is_projection(node, scope):
            key = physical_key(source)
            if key:
                out.problem("star", [key], _star_message([key], out.qualified), node)
        else:
            _whole_row(source, node.table, node, out)
    elif isinstance(node, exp.Column):
        _column(node, scope, out)
    elif isinstance(node, exp.Star) and not isinstance(node.parent, exp.Column):
        if isinstance(node.parent, (exp.Count, exp.Dot)):
            return  # COUNT(*) reads no column; in `(u).*` the Column u is judged itself
        keys = [k for _, src in _own_sources(scope) if (k := physical_key(src))]
        if keys:
            kind: UnprovableKind = "star" if _is_projection(node, scope) else "whole_row"
            out.problem(kind, keys, _star_message(keys, out.qualified), node)
    elif isinstance(node, exp.Join) and not out.qualified:
        _join(node, scope, out)


def _column(node: exp.Column, scope: Scope, out: _Collector) -> None:
    name = node.name
    if node.table:
        source = _lookup(scope, node.table)
        key = physical_key(source)
        if key:
            out.read(key, name, node)
        elif source is None:
            out.problem("unknown_column", [], f"{node.table}.{name}: no FROM item is called "
                        f"{node.table}", node, column=name)
        return
    if _is_output_alias(node, scope):
        return
    if not out.qualified:
        # PostgreSQL reads a bare name that no FROM item has as a whole-row reference to
        # the FROM item of that name; without a schema either reading is possible.
        for alias, source in _visible_sources(scope):
            if alias == name and physical_key(source):
                _whole_row(source, name, node, out)
    keys = _candidates(scope, name)
    if len(keys) == 1:
        out.read(keys[0], name, node)
    elif len(keys) > 1:
        names = ", ".join(f"{s}.{t}" for s, t in keys)
        out.problem("ambiguous", keys, f"column {name} could belong to any of {names}; qualify "
                    "it with its table alias", node, column=name)


def _join(join: exp.Join, scope: Scope, out: _Collector) -> None:
    select = join.parent
    if not isinstance(select, exp.Select):
        return
    right = physical_key(_lookup(scope, join.this.alias_or_name))
    joins = select.args.get("joins") or []
    source = select.args.get("from_")
    items = [source.this] if isinstance(source, exp.From) else []
    for other in joins:
        if other is join:
            break
        items.append(other.this)
    left = [k for item in items if (k := physical_key(_lookup(scope, item.alias_or_name)))]
    if join.args.get("method") == "NATURAL":
        keys = [*left, *([right] if right else [])]
        if keys:
            out.problem("star", keys, "NATURAL JOIN compares every column the joined tables "
                        "share; without a schema pgmcp cannot name them", join)
        return
    for ident in join.args.get("using") or []:
        name = ident.name
        if right:
            out.read(right, name, ident)
        if len(left) == 1:
            out.read(left[0], name, ident)
        elif len(left) > 1:
            out.problem("ambiguous", left, f"USING ({name}) could join on any of several tables",
                        ident, column=name)


def _whole_row(source: Source | None, alias: str, node: exp.Expr, out: _Collector) -> None:
    key = physical_key(source)
    if key:
        out.problem("whole_row", [key], f"whole-row reference {alias} reads every column of "
                    f"{key[0]}.{key[1]}", node)


def _star_message(keys: list[TableKey], qualified: bool) -> str:
    names = ", ".join(f"{s}.{t}" for s, t in dict.fromkeys(keys))
    why = "the schema snapshot does not describe it" if qualified else "there is no schema to expand it"
    return f"* over {names}: {why}; name the columns instead"


def _is_projection(node: exp.Expr, scope: Scope) -> bool:
    return node.parent is scope.expression and node.arg_key == "expressions"


def _is_output_alias(node: exp.Column, scope: Scope) -> bool:
    # PostgreSQL reads an ORDER BY item as an output column only when the whole sort key is
    # the bare name (parentheses aside); inside any expression (`name || ''`, `-length(name)`,
    # `name COLLATE "C"`) the name is the input column, even when an output alias shadows it.
    key: exp.Expr = node
    while isinstance(key.parent, exp.Paren):
        key = key.parent
    ordered = key.parent
    if not (isinstance(ordered, exp.Ordered) and key.arg_key == "this"):
        return False
    order = ordered.parent
    query = scope.expression
    return (
        isinstance(order, exp.Order)
        and order.parent is query
        and isinstance(query, exp.Query)
        and node.name in query.named_selects
    )


def _lookup(scope: Scope | None, alias: str) -> Source | None:
    while scope is not None:
        if alias in scope.sources:
            found = scope.sources[alias]
            return found if isinstance(found, (exp.Table, Scope)) else None
        scope = scope.parent
    return None


def _own_sources(scope: Scope) -> list[tuple[str, Source]]:
    pairs = scope.selected_sources.items() if scope.selected_sources else ()
    out = [(alias, src) for alias, (_, src) in pairs if isinstance(src, (exp.Table, Scope))]
    if not out and scope.scope_type == ScopeType.UDTF:
        out = [(a, s) for a, s in scope.sources.items() if isinstance(s, (exp.Table, Scope))]
    return out


def _levels(scope: Scope) -> list[Scope]:
    """The query levels whose FROM items a name in `scope` can see, innermost first."""
    levels = [scope]
    current: Scope | None = scope
    while current is not None and current.parent is not None:
        opaque = (
            current.scope_type in (ScopeType.CTE, ScopeType.DERIVED_TABLE)
            and not current.can_be_correlated
        )
        current = current.parent
        if not opaque:
            levels.append(current)
    return levels


def _visible_sources(scope: Scope) -> list[tuple[str, Source]]:
    return [pair for level in _levels(scope) for pair in _own_sources(level)]


def _candidates(scope: Scope, name: str) -> list[TableKey]:
    """Physical tables that may own the bare column `name`, innermost level first.

    The search stops at the first level where a derived table or CTE certainly provides the
    name; a physical table only *may* have it (no schema), so the search goes on outward.
    """
    keys: list[TableKey] = []
    for level in _levels(scope):
        definite = False
        for _, source in _own_sources(level):
            key = physical_key(source)
            if key:
                keys.append(key)
            elif isinstance(source, Scope) and name in (_outputs(source) or ()):
                definite = True
        if definite:
            break
    return list(dict.fromkeys(keys))


def _outputs(source: Scope) -> set[str] | None:
    """Output names of a derived table or CTE, None when a star makes them unknown."""
    query = source.expression
    if not isinstance(query, exp.Query):
        return None
    selects = query.selects
    if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and isinstance(s.this, exp.Star))
           for s in selects):
        return None
    names = list(query.named_selects)
    alias = query.parent.args.get("alias") if query.parent is not None else None
    if isinstance(alias, exp.TableAlias) and alias.columns:
        renamed = [c.name for c in alias.columns]
        names = renamed + names[len(renamed):]
    return set(names)


# Public names for the field-selection proof (`pgmcp.policy.fields`), which resolves names
# the same way.
levels = _levels
own_sources = _own_sources
