"""One walk over a statement that maps every name to what it reads, as PostgreSQL's parse
analysis does (analyze.c, parse_clause.c, parse_relation.c, parse_target.c).

Query levels are visited outside in. A level's FROM items are built first
(transformFromClauseItem): relations, CTE references, derived tables, LATERAL items, table
functions, VALUES and joins; then its expressions are resolved against them:

- an unqualified name belongs to the innermost level where some FROM item has a column of
  that name (colNameToVar); only when none has one is it a whole-row reference to a FROM item
  of that name (transformColumnRef);
- `t.name` names the FROM item t, innermost level first (refnameNamespaceItem); when t has no
  column `name` it is the call name(t) on the whole row;
- `*` and `t.*` in a select list expand the items' columns (ExpandColumnRefStar); anywhere
  else `t.*` is a whole-row reference;
- an ORDER BY / DISTINCT ON item that is a bare output name is that output column; a GROUP BY
  bare name is an input column first (findTargetlistEntrySQL92);
- a non-LATERAL derived table or CTE body sees the enclosing levels, not its siblings; a
  LATERAL item or a table function's arguments see the items to their left; a join's ON sees
  the join's two sides.

Where a FROM item's columns are unknown (no snapshot) a name may or may not be its column:
the walk records it as a possible read and keeps looking outward, so nothing is missed.
Shapes it does not know raise `AnalysisError`: the statement is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlglot import exp

from pgmcp.policy.analysis.calls import is_attribute_notation
from pgmcp.policy.analysis.items import NOTHING, Item, Match, Read, derived_item, join_item, physical_item
from pgmcp.policy.analysis.model import (
    Access,
    AccessKind,
    Analysis,
    AnalysisError,
    FieldSelection,
    RowCall,
    UnknownColumn,
)
from pgmcp.policy.analysis.names import RelationRef, fold, resolve_table
from pgmcp.policy.analysis.outputs import alias_columns, function_columns, function_name, output_name
from pgmcp.schema.snapshot import SchemaSnapshot

Outputs = tuple[list[str | None], bool]  # output column names, and whether they are all of them

# Select arguments resolved by `_select` itself, or holding no expression to resolve.
_HANDLED = frozenset({"with_", "from_", "joins", "expressions", "order", "group", "distinct"})


@dataclass
class _Cte:
    index: int
    names: list[str | None]
    complete: bool


@dataclass
class _Env:
    """The CTE names visible at one point: one WITH's entries (those before `limit`), then outer ones."""

    ctes: dict[str, _Cte]
    limit: int | None
    outer: _Env | None

    def find(self, name: str) -> _Cte | None:
        env: _Env | None = self
        while env is not None:
            cte = env.ctes.get(name)
            if cte is not None and (env.limit is None or cte.index < env.limit):
                return cte
            env = env.outer
        return None


@dataclass
class _Level:
    """One query level: its FROM items (namespace) and the level it is nested in."""

    parent: _Level | None
    items: list[Item]
    env: _Env | None
    outputs: list[str | None] = field(default_factory=list)

    def chain(self) -> Iterator[_Level]:
        level: _Level | None = self
        while level is not None:
            yield level
            level = level.parent


class Walker:
    """Resolves one statement into an `Analysis` (see the module doc)."""

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

    # -- queries ---------------------------------------------------------------------------

    def query(self, node: exp.Expr, outer: _Level | None, env: _Env | None) -> Outputs:
        """Resolve a query (SELECT, set operation, VALUES, parenthesised query); its outputs."""
        if isinstance(node, exp.Subquery) and isinstance(node.this, (exp.Query, exp.Values)):
            names = self.query(node.this, outer, env)
            self._rest(node, _Level(outer, [derived_item(None, *names, [], "")], env), {"this", "alias"})
            return names
        if isinstance(node, exp.Select):
            return self._select(node, outer, env)
        if isinstance(node, exp.SetOperation):
            env = self._with(node, outer, env)
            left = self.query(node.this, outer, env)
            self.query(node.expression, outer, env)
            # ORDER BY / LIMIT of a set operation see only its output columns.
            self._rest(node, _Level(outer, [derived_item(None, *left, [], "")], env), {"this", "expression", "with_"})
            return left
        if isinstance(node, exp.Values):
            return self._values(node, outer, env)
        raise AnalysisError(f"a {type(node).__name__} where a query was expected")

    def _values(self, node: exp.Values, outer: _Level | None, env: _Env | None) -> Outputs:
        level = _Level(outer, [], env)
        width = 0
        for row in node.expressions:
            self.expr(row, level)
            width = len(row.expressions) if isinstance(row, exp.Tuple) else 1
        return [f"column{i + 1}" for i in range(width)], True

    def _with(self, query: exp.Expr, outer: _Level | None, env: _Env | None) -> _Env | None:
        with_ = query.args.get("with_")
        if not isinstance(with_, exp.With):
            return env
        recursive = bool(with_.args.get("recursive"))
        ctes: dict[str, _Cte] = {}
        mine = _Env(ctes, None if recursive else 0, env)
        if recursive:
            # Every CTE is visible to itself and its siblings before its columns are known (a
            # recursive reference sees the non-recursive term's columns; until then: unknown).
            for index, cte in enumerate(with_.expressions):
                name, columns, _ = alias_columns(cte.args.get("alias"))
                ctes.setdefault(name or "", _Cte(index, list(columns), False))
        for index, cte in enumerate(with_.expressions):
            name, columns, _ = alias_columns(cte.args.get("alias"))
            if name is None:
                raise AnalysisError("a CTE without a name")
            body = cte.this
            if not recursive:
                mine.limit = index
            if recursive and isinstance(body, exp.SetOperation):
                names, complete = self.query(body.this, outer, mine)
                ctes[name] = _Cte(index, [*columns, *names[len(columns) :]], complete)
                self.query(body.expression, outer, mine)
                self._rest(body, _Level(outer, [], mine), {"this", "expression", "with_"})
            elif isinstance(body, (exp.Query, exp.Values)):
                names, complete = self.query(body, outer, mine)
            else:
                raise AnalysisError(f"a CTE body of kind {type(body).__name__}")
            ctes[name] = _Cte(index, [*columns, *names[len(columns) :]], complete)
        mine.limit = None
        return mine

    def _select(self, node: exp.Select, outer: _Level | None, env: _Env | None) -> Outputs:
        env = self._with(node, outer, env)
        if node.args.get("laterals"):
            raise AnalysisError("LATERAL VIEW is not PostgreSQL")
        items = self._from_clause(node, outer, env)
        level = _Level(outer, items, env)
        names: list[str | None] = []
        complete = True
        for projection in node.expressions:
            star = _star_of(projection)
            if star is not None:
                expanded = self._star(projection, star, level)
                names += expanded[0]
                complete = complete and expanded[1]
                continue
            self.expr(projection, level)
            names.append(output_name(projection))
        level.outputs = names
        distinct = node.args.get("distinct")
        if isinstance(distinct, exp.Distinct) and distinct.args.get("on") is not None:
            for item in _flat(distinct.args["on"]):
                self._sort_key(item, level, group=False)
        group = node.args.get("group")
        if isinstance(group, exp.Group):
            for key, value in group.args.items():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, exp.Expr):
                        if key == "expressions":
                            self._sort_key(item, level, group=True)
                        else:
                            self.expr(item, level)
        order = node.args.get("order")
        if isinstance(order, exp.Order):
            for ordered in order.expressions:
                self._sort_key(ordered, level, group=False)
        self._rest(node, level, _HANDLED)
        return names, complete

    def _rest(self, node: exp.Expr, level: _Level, skip: frozenset[str] | set[str]) -> None:
        for key, value in node.args.items():
            if key in skip or value is None:
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, exp.Expr):
                    self.expr(child, level)

    def _sort_key(self, item: exp.Expr, level: _Level, *, group: bool) -> None:
        """ORDER BY / DISTINCT ON / GROUP BY item (findTargetlistEntrySQL92)."""
        key = item.this if isinstance(item, exp.Ordered) else item
        while isinstance(key, exp.Paren):
            key = key.this
        if isinstance(key, exp.Column) and isinstance(key.this, exp.Identifier) and not key.table:
            name = fold(key.this)
            if name in level.outputs:
                local = [m for i in level.items if (m := i.lookup(name)) is not None]
                if not group or not local:
                    # An output column: what it reads was counted in the select list. (A
                    # GROUP BY name that is also an input column is the input column.)
                    if isinstance(item, exp.Ordered):
                        self._rest(item, level, {"this"})
                    return
        self.expr(item, level)

    # -- FROM ------------------------------------------------------------------------------

    def _from_clause(self, node: exp.Expr, outer: _Level | None, env: _Env | None) -> list[Item]:
        """The FROM items of a SELECT, or of a parenthesised join (`node` is then its first member,
        which sqlglot hangs the join list on)."""
        items: list[Item] = []
        if isinstance(node, exp.Select):
            source = node.args.get("from_")
            first = source.this if isinstance(source, exp.From) else None
        else:
            first = node
        if first is None:
            if node.args.get("joins"):
                raise AnalysisError("joins without a FROM item")
            return items
        items.append(self._item(first, outer, env, items, members=first is not node))
        for join in node.args.get("joins") or []:
            right = self._item(join.this, outer, env, items)
            comma = not any(join.args.get(k) for k in ("kind", "side", "method", "on", "using"))
            if comma:
                items.append(right)
                continue
            left = items.pop()
            merged: list[str] = []
            if join.args.get("method") == "NATURAL":
                merged = self._natural(join, left, right)
            for ident in join.args.get("using") or []:
                name = fold(ident)
                merged.append(name)
                reads = frozenset().union(*(m.reads for side in (left, right) if (m := side.lookup(name))))
                self._access("column", reads, ident, f"USING ({name})")
            on = join.args.get("on")
            if on is not None:
                self.expr(on, _Level(outer, [left, right], env))
            items.append(join_item(left, right, merged, None, []))
        return items

    def _natural(self, join: exp.Join, left: Item, right: Item) -> list[str]:
        if left.certain and right.certain:
            right_names = set(right.columns()[0])
            merged = [n for n in left.columns()[0] if n is not None and n in right_names]
            reads = frozenset().union(*(m.reads for s in (left, right) for n in merged if (m := s.lookup(n))))
            self._access("column", reads, join, "NATURAL JOIN")
            return merged
        unknown = frozenset((s, t, None) for s, t, _ in left.all_reads() | right.all_reads())
        self._access("natural", unknown, join, "NATURAL JOIN")
        return []

    def _item(
        self, node: exp.Expr, outer: _Level | None, env: _Env | None, left: list[Item], *, members: bool = True
    ) -> Item:
        """One FROM item; `left` holds the items before it (what LATERAL and functions see).

        A node carrying `joins` is the first member of a parenthesised join (`members` False
        when that join is being built: the node then stands for itself only).
        """
        if members and node.args.get("joins"):
            items = self._from_clause(node, outer, env)
            if len(items) != 1:
                raise AnalysisError("a parenthesised FROM list")
            return items[0]
        lateral = _Level(outer, list(left), env)
        alias, columns, _ = alias_columns(node.args.get("alias"))
        if isinstance(node, exp.Table):
            return self._table(node, outer, env, lateral, alias, columns)
        if isinstance(node, exp.Subquery):
            fenced = self.fences.get(id(node))
            if fenced is not None:
                # The condition inside is the policy's, not the user's: not resolved as a read.
                self.tables.update(id(t) for t in node.find_all(exp.Table))
                return self._relation(fenced, alias, columns, fenced=True)
            inner = node.this
            if inner.args.get("joins") or isinstance(inner, exp.Table):  # a parenthesised join, maybe aliased
                joined = self._item(inner, outer, env, [])
                if alias is None:
                    return joined
                if not joined.children:
                    raise AnalysisError("an alias on a parenthesised FROM item")
                return join_item(joined.children[0], joined.children[1], joined.merged, alias, columns)
            if isinstance(inner, (exp.Query, exp.Values)):
                names, complete = self.query(inner, outer, env)
                return derived_item(alias, names, complete, columns, f"the subquery {alias or ''}".rstrip())
            raise AnalysisError(f"a FROM item of kind {type(inner).__name__}")
        if isinstance(node, exp.Lateral):
            inner = node.this
            if isinstance(inner, exp.Subquery) and isinstance(inner.this, (exp.Query, exp.Values)):
                names, complete = self.query(inner.this, lateral, env)
                sub_alias, sub_columns, _ = alias_columns(inner.args.get("alias"))
                return derived_item(alias or sub_alias, names, complete, columns or sub_columns, "the LATERAL subquery")
            if isinstance(inner, (exp.Func, exp.Dot)):
                func = inner.expression if isinstance(inner, exp.Dot) else inner
                return self._function(func, inner, node, lateral, alias, columns)
            raise AnalysisError(f"a LATERAL item of kind {type(inner).__name__}")
        if isinstance(node, exp.Unnest):
            self.expr(node, lateral)
            offset = node.args.get("offset")
            if isinstance(offset, exp.Identifier):  # WITH ORDINALITY AS u(v, i): sqlglot keeps i here
                columns = [*columns, fold(offset)]
                offset = None
            names, complete = function_columns(exp.Anonymous(this="unnest", expressions=node.expressions),
                                               alias, bool(offset))
            return derived_item(alias or "unnest", names, complete, columns, "the unnest call")
        if isinstance(node, exp.Values):
            names, complete = self._values(node, outer, env)
            return derived_item(alias, names, complete, columns, "the VALUES list")
        raise AnalysisError(f"a FROM item of kind {type(node).__name__}")

    def _table(
        self, node: exp.Table, outer: _Level | None, env: _Env | None, lateral: _Level,
        alias: str | None, columns: list[str],
    ) -> Item:
        if node.args.get("rows_from"):
            for func in node.args["rows_from"]:
                self.expr(func, lateral)
            _, _, defs = alias_columns(node.args.get("alias"))
            return derived_item(alias, [], bool(defs), columns, "ROWS FROM")
        if isinstance(node.this, exp.Func):
            return self._function(node.this, node.this, node, lateral, alias, columns)
        if isinstance(node.this, exp.Identifier) and not node.args.get("db") and env is not None:
            cte = env.find(fold(node.this))
            if cte is not None:
                self.tables.add(id(node))
                name = alias or fold(node.this)
                return derived_item(name, cte.names, cte.complete, columns, f"the CTE {fold(node.this)}")
        for key in ("sample", "version", "when", "changes", "pivots"):
            value = node.args.get(key)
            if value is not None and key != "sample":
                raise AnalysisError(f"a table reference with {key}")
        if node.args.get("sample") is not None:
            self.expr(node.args["sample"], lateral)
        return self._relation(node, alias, columns, fenced=False)

    def _relation(self, node: exp.Table, alias: str | None, columns: list[str], *, fenced: bool) -> Item:
        self.tables.add(id(node))
        ref = resolve_table(node, self.search_path, self.snapshot, fenced=fenced)
        if not isinstance(ref, RelationRef):
            self.out.unresolved.append(ref)
            return Item(alias or fold(node.this), [], False, [])
        self.out.relations.append(ref)
        relation = self.snapshot.relation(ref.schema, ref.name) if self.snapshot is not None else None
        key = (ref.schema, ref.name)
        return physical_item(alias or ref.name, key, relation, columns, bare=alias is None)

    def _function(
        self, func: exp.Expr, call: exp.Expr, item: exp.Expr, lateral: _Level, alias: str | None, columns: list[str]
    ) -> Item:
        self.expr(call, lateral)
        _, _, defs = alias_columns(item.args.get("alias"))
        if defs:
            defined: list[str | None] = list(columns)
            return derived_item(alias, defined, True, [], "the table function")
        names, complete = function_columns(func, alias, bool(item.args.get("ordinality")))
        # An unaliased function's columns are qualified by the function's name.
        return derived_item(alias or function_name(func), names, complete, columns, "the table function")

    # -- expressions -----------------------------------------------------------------------

    def expr(self, node: exp.Expr, level: _Level) -> None:
        """Resolve every reference in expression `node` at `level` (iteratively: long lists)."""
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, (exp.Query, exp.Values)) and not isinstance(current, exp.Subquery):
                self.query(current, level, level.env)
                continue
            if isinstance(current, exp.Subquery):
                self.query(current, level, level.env)
                continue
            if isinstance(current, exp.Column):
                self._column(current, level)
                continue
            if isinstance(current, exp.Dot) and is_attribute_notation(current) and self._field(current, level):
                continue
            if isinstance(current, exp.Collate):
                stack.append(current.this)  # the collation name is no column
                continue
            for child in current.iter_expressions(reverse=True):
                stack.append(child)

    def _star(self, node: exp.Expr, star: str, level: _Level) -> Outputs:
        """`*` or `t.*` in a select list: the columns it expands to (ExpandColumnRefStar)."""
        if star == "":
            items = level.items
            label = "*"
        else:
            found = self._named(level, star)
            if found is None:
                return [], False
            items = [found]
            label = f"{star}.*"
        names: list[str | None] = []
        complete = True
        for item in items:
            more, _ = item.columns()
            names += more
            complete = complete and item.certain
            self._access("star", item.all_reads(), node, label)
        return names, complete

    def _named(self, level: _Level, alias: str) -> Item | None:
        for current in level.chain():
            for item in current.items:
                found = item.named(alias)
                if found is not None:
                    return found
        return None

    def _column(self, node: exp.Column, level: _Level) -> None:
        parts = [fold(p) for p in (node.args.get("catalog"), node.args.get("db"), node.args.get("table")) if p]
        if isinstance(node.this, exp.Star):
            item = self._named(level, parts[-1]) if parts else None
            if item is not None:
                self._access("whole_row", item.all_reads(), node, f"{parts[-1]}.*")
            return
        if not isinstance(node.this, exp.Identifier):
            raise AnalysisError("a column reference of an unsupported shape")
        name = fold(node.this)
        if not parts and name == "user" and not node.this.quoted:
            return  # the keyword USER is current_user, never a column
        if not parts:
            self._bare(node, name, level)
        elif len(parts) == 1:
            self._qualified(node, parts[0], name, level)
        else:
            key = (parts[-2], parts[-1])
            for current in level.chain():
                for item in current.items:
                    found = item.unaliased(key)
                    if found is not None:
                        self._in_item(node, found, f"{key[0]}.{key[1]}", name)
                        return

    def _bare(self, node: exp.Column, name: str, level: _Level) -> None:
        """An unqualified name: a column of the innermost level that has one, else a whole row."""
        maybe: list[Match] = []
        everything_known = True
        for current in level.chain():
            matches = [m for item in current.items if (m := item.lookup(name)) is not None]
            certain = [m for m in matches if m.certain]
            if certain:
                reads = frozenset().union(*(m.reads for m in certain), *(m.reads for m in maybe))
                self._access(_kind(reads, bool(maybe)), reads, node, name)
                return
            maybe += matches
            everything_known = everything_known and all(item.certain for item in current.items)
        reads = frozenset().union(*(m.reads for m in maybe)) if maybe else NOTHING
        whole = self._named(level, name)
        if whole is not None:
            reads |= whole.all_reads()
            self._access("whole_row", reads, node, name)
        elif maybe:
            self._access(_kind(reads, True), reads, node, name)
        elif everything_known:
            self.out.unknown.append(UnknownColumn(node, name))

    def _qualified(self, node: exp.Column, alias: str, name: str, level: _Level) -> None:
        item = self._named(level, alias)
        if item is None:
            if self.snapshot is not None:
                self.out.row_calls.append(RowCall(node, alias, name, f"no FROM item visible here is called {alias}"))
            return
        self._in_item(node, item, alias, name)

    def _in_item(self, node: exp.Column, item: Item, shown: str, name: str) -> None:
        """`t.name` with t the FROM item `item`: its column, or the call name(t) (transformColumnRef)."""
        match = item.lookup(name)
        if match is not None:
            self._access("column", match.reads, node, f"{shown}.{name}")
            if not match.certain and self.snapshot is not None and not (item.physical and item.relation is None):
                why = f"the columns of {item.what} cannot all be determined"
                self.out.row_calls.append(RowCall(node, shown, name, why))
            return
        # No such column: PostgreSQL calls name(t) on the whole row.
        self._access("whole_row", item.all_reads(), node, shown)
        self.out.row_calls.append(RowCall(node, shown, name, f"{item.what} has no column {name}"))

    def _access(self, kind: AccessKind, reads: frozenset[Read], node: exp.Expr, label: str) -> None:
        if reads:
            self.out.accesses.append(Access(kind, reads, node, label))

    # -- (expr).name -----------------------------------------------------------------------

    def _field(self, dot: exp.Dot, level: _Level) -> bool:
        """`(expr).name` / `(expr).*`: resolved here when proven (True), else walked as a call."""
        base = dot.this
        while isinstance(base, exp.Paren):
            base = base.this
        star = isinstance(dot.expression, exp.Star)
        if isinstance(base, exp.Column) and isinstance(base.this, exp.Identifier) and not base.args.get("db"):
            name = fold(base.this)
            column = self._column_match(base, level)
            if column is not None:
                if star or self.snapshot is None or not column.certain:
                    return False
                return self._composite_field(dot, base, column, level)
            item = None if base.table else self._named(level, name)
            if item is None:
                return False
            if star:
                self._access("whole_row", item.all_reads(), dot, f"({name}).*")
                return True
            field_name = fold(dot.expression)
            match = item.lookup(field_name) if item.relation is not None and item.certain else None
            if match is None or not match.certain:
                return False
            info = item.relation.column(_physical_name(match.reads) or "") if item.relation else None
            if info is not None:
                self.out.fields[id(dot)] = FieldSelection(dot, field_name, info.type)
            self._access("column", match.reads, dot, f"({name}).{field_name}")
            return True
        if isinstance(base, exp.Dot) and not star and self.snapshot is not None:
            self.expr(base, level)
            inner = self.out.fields.get(id(base))
            composite = self.snapshot.composite(inner.type) if inner is not None else None
            found = composite.get_field(fold(dot.expression)) if composite is not None else None
            if found is not None:
                self.out.fields[id(dot)] = FieldSelection(dot, found.name, found.type)
            return True  # the base was walked; an unproven Dot stays a possible call
        return False

    def _column_match(self, column: exp.Column, level: _Level) -> Match | None:
        """What the column reference `column` (bare or `t.c`) resolves to, if it is a column."""
        name = fold(column.this)
        if column.table:
            item = self._named(level, fold(column.args.get("table")))
            return item.lookup(name) if item is not None else None
        for current in level.chain():
            matches = [m for item in current.items if (m := item.lookup(name)) is not None]
            if matches:
                return matches[0] if len(matches) == 1 else Match(NOTHING, False)
        return None

    def _composite_field(self, dot: exp.Dot, base: exp.Column, column: Match, level: _Level) -> bool:
        column_type = self._type_of(column.reads)
        composite = self.snapshot.composite(column_type) if self.snapshot and column_type else None
        found = composite.get_field(fold(dot.expression)) if composite is not None else None
        if found is None:
            return False
        self._column(base, level)
        self.out.fields[id(dot)] = FieldSelection(dot, found.name, found.type)
        return True

    def _type_of(self, reads: frozenset[Read]) -> str | None:
        if self.snapshot is None or len(reads) != 1:
            return None
        schema, table, column = next(iter(reads))
        relation = self.snapshot.relation(schema, table)
        info = relation.column(column) if relation is not None and column is not None else None
        return info.type if info is not None else None


def _kind(reads: frozenset[Read], uncertain: bool) -> AccessKind:
    """A name that may belong to several tables is ambiguous; a merged USING column is not."""
    return "ambiguous" if uncertain and len({r[:2] for r in reads}) > 1 else "column"


def _physical_name(reads: frozenset[Read]) -> str | None:
    return next(iter(reads))[2] if len(reads) == 1 else None


def _star_of(projection: exp.Expr) -> str | None:
    """'' for `*`, the folded qualifier for `t.*`, None for any other select-list item."""
    if isinstance(projection, exp.Star):
        return ""
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        return fold(projection.args.get("table"))
    return None


def _flat(node: exp.Expr) -> list[exp.Expr]:
    return list(node.expressions) if isinstance(node, exp.Tuple) else [node]
