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

from sqlglot import exp

from pgmcp.policy.analysis.calls import is_attribute_notation
from pgmcp.policy.analysis.fields import FieldSelections
from pgmcp.policy.analysis.from_clause import FromClause
from pgmcp.policy.analysis.items import NOTHING, Item, Match, Read, derived_item
from pgmcp.policy.analysis.model import AccessKind, AnalysisError, RowCall, UnknownColumn
from pgmcp.policy.analysis.names import fold
from pgmcp.policy.analysis.outputs import alias_columns, output_name
from pgmcp.policy.analysis.scope import Cte, Env, Level, Outputs

# Select arguments resolved by `_select` itself, or holding no expression to resolve.
_HANDLED = frozenset({"with_", "from_", "joins", "expressions", "order", "group", "distinct"})


class Walker(FromClause, FieldSelections):
    """Resolves one statement into an `Analysis` (see the module doc)."""

    def query(self, node: exp.Expr, outer: Level | None, env: Env | None) -> Outputs:
        """Resolve a query (SELECT, set operation, VALUES, parenthesised query); its outputs."""
        if isinstance(node, exp.Subquery) and isinstance(node.this, (exp.Query, exp.Values)):
            names = self.query(node.this, outer, env)
            self._rest(node, Level(outer, [derived_item(None, *names, [], "")], env), {"this", "alias"})
            return names
        if isinstance(node, exp.Select):
            return self._select(node, outer, env)
        if isinstance(node, exp.SetOperation):
            env = self._with(node, outer, env)
            left = self.query(node.this, outer, env)
            self.query(node.expression, outer, env)
            # ORDER BY / LIMIT of a set operation see only its output columns.
            self._rest(node, Level(outer, [derived_item(None, *left, [], "")], env), {"this", "expression", "with_"})
            return left
        if isinstance(node, exp.Values):
            return self._values(node, outer, env)
        raise AnalysisError(f"a {type(node).__name__} where a query was expected")

    def _values(self, node: exp.Values, outer: Level | None, env: Env | None) -> Outputs:
        level = Level(outer, [], env)
        width = 0
        for row in node.expressions:
            self.expr(row, level)
            width = len(row.expressions) if isinstance(row, exp.Tuple) else 1
        return [f"column{i + 1}" for i in range(width)], True

    def _with(self, query: exp.Expr, outer: Level | None, env: Env | None) -> Env | None:
        with_ = query.args.get("with_")
        if not isinstance(with_, exp.With):
            return env
        recursive = bool(with_.args.get("recursive"))
        ctes: dict[str, Cte] = {}
        mine = Env(ctes, None if recursive else 0, env)
        if recursive:
            # Every CTE is visible to itself and its siblings before its columns are known (a
            # recursive reference sees the non-recursive term's columns; until then: unknown).
            for index, cte in enumerate(with_.expressions):
                name, columns, _ = alias_columns(cte.args.get("alias"))
                ctes.setdefault(name or "", Cte(index, list(columns), False))
        for index, cte in enumerate(with_.expressions):
            name, columns, _ = alias_columns(cte.args.get("alias"))
            if name is None:
                raise AnalysisError("a CTE without a name")
            body = cte.this
            if not recursive:
                mine.limit = index
            if recursive and isinstance(body, exp.SetOperation):
                # The non-recursive term first: the recursive one sees the CTE with its columns.
                inner = self._with(body, outer, mine)
                names, complete = self.query(body.this, outer, inner)
                ctes[name] = Cte(index, [*columns, *names[len(columns) :]], complete)
                self.query(body.expression, outer, inner)
                self._rest(body, Level(outer, [], inner), {"this", "expression", "with_"})
            elif isinstance(body, (exp.Query, exp.Values)):
                names, complete = self.query(body, outer, mine)
            else:
                raise AnalysisError(f"a CTE body of kind {type(body).__name__}")
            ctes[name] = Cte(index, [*columns, *names[len(columns) :]], complete)
        mine.limit = None
        return mine

    def _select(self, node: exp.Select, outer: Level | None, env: Env | None) -> Outputs:
        env = self._with(node, outer, env)
        if node.args.get("laterals"):
            raise AnalysisError("LATERAL VIEW is not PostgreSQL")
        items = self._from_clause(node, outer, env)
        level = Level(outer, items, env)
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

    def _rest(self, node: exp.Expr, level: Level, skip: frozenset[str] | set[str]) -> None:
        for key, value in node.args.items():
            if key in skip or value is None:
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, exp.Expr):
                    self.expr(child, level)

    def _sort_key(self, item: exp.Expr, level: Level, *, group: bool) -> None:
        """ORDER BY / DISTINCT ON / GROUP BY item (findTargetlistEntrySQL92)."""
        key = item.this if isinstance(item, exp.Ordered) else item
        while isinstance(key, exp.Paren):
            key = key.this
        if isinstance(key, exp.Column) and isinstance(key.this, exp.Identifier) and not key.table:
            name = fold(key.this)
            if name in level.outputs:
                local = level.matches(name)
                if not group or not local:
                    # An output column: what it reads was counted in the select list. (A
                    # GROUP BY name that is also an input column is the input column.)
                    self.columns.add(id(key))
                    if isinstance(item, exp.Ordered):
                        self._rest(item, level, {"this"})
                    return
        self.expr(item, level)

    # -- FROM ------------------------------------------------------------------------------

    def expr(self, node: exp.Expr, level: Level) -> None:
        """Resolve every reference in expression `node` at `level` (iteratively: long lists)."""
        stack = [node]
        pop, push, extend = stack.pop, stack.append, stack.extend
        kinds = _KINDS
        while stack:
            current = pop()
            kind = kinds.get(current.__class__)
            if kind is None:
                kind = kinds[current.__class__] = _kind_of(current.__class__)
            if kind is _LEAF:
                continue
            if kind is _QUERY:
                self.query(current, level, level.env)
                continue
            if kind is _COLUMN:
                self._column(current, level)  # type: ignore[arg-type]
                continue
            if kind is _DOT:
                if is_attribute_notation(current) and self._field(current, level):  # type: ignore[arg-type]
                    continue
            elif kind is _COLLATE:
                push(current.this)  # the collation name is no column
                continue
            extend(current.iter_expressions(reverse=True))

    def _star(self, node: exp.Expr, star: str, level: Level) -> Outputs:
        """`*` or `t.*` in a select list: the columns it expands to (ExpandColumnRefStar)."""
        self.columns.add(id(node))
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

    def _column(self, node: exp.Column, level: Level) -> None:
        self.columns.add(id(node))
        parts = [fold(p) for p in (node.args.get("catalog"), node.args.get("db"), node.args.get("table")) if p]
        star = isinstance(node.this, exp.Star)
        if not star and not isinstance(node.this, exp.Identifier):
            raise AnalysisError("a column reference of an unsupported shape")
        name = "*" if star else fold(node.this)
        if not parts and name == "user" and not node.this.quoted:
            return  # the keyword USER is current_user, never a column
        if not parts:
            self._bare(node, name, level)
        elif len(parts) == 1 and star:
            item = self._named(level, parts[0])
            if item is not None:
                self._access("whole_row", item.all_reads(), node, f"{parts[0]}.*")
        elif len(parts) == 1:
            self._qualified(node, parts[0], name, level)
        else:
            self._dotted(node, parts, name, level)

    def _dotted(self, node: exp.Column, parts: list[str], name: str, level: Level) -> None:
        """`a.b.c` (and longer): schema.table.column first, else table.column.field (transformColumnRef)."""
        key = (parts[-2], parts[-1])
        for current in level.chain():
            for item in current.items:
                found = item.unaliased(key)
                if found is not None:
                    if name == "*":
                        projection = isinstance(node.parent, exp.Select) and node.arg_key == "expressions"
                        kind: AccessKind = "star" if projection else "whole_row"
                        self._access(kind, found.all_reads(), node, f"{key[0]}.{key[1]}.*")
                    else:
                        self._in_item(node, found, f"{key[0]}.{key[1]}", name)
                    return
        # table.column, then each further name a field of it or a call on it (transformIndirection).
        names = [*parts, name]
        owner = self._named(level, names[0])
        if owner is None:
            return  # PostgreSQL: a missing FROM-clause entry, an error
        self._in_item(node, owner, names[0], names[1])
        shown = f"{names[0]}.{names[1]}"
        for field_name in names[2:]:
            if field_name != "*":
                why = f"{field_name} is a field of {shown} or a call {field_name}({shown})"
                self.out.row_calls.append(RowCall(node, shown, field_name, why))
            shown = f"{shown}.{field_name}"

    def _bare(self, node: exp.Column, name: str, level: Level) -> None:
        """An unqualified name: a column of the innermost level that has one, else a whole row."""
        first = level.matches(name)
        if len(first) == 1 and first[0].certain:  # the common case: one FROM item here has it
            self._access("column", first[0].reads, node, name)
            return
        maybe: list[Match] = []
        everything_known = True
        for current in level.chain():
            matches = current.matches(name)
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

    def _qualified(self, node: exp.Column, alias: str, name: str, level: Level) -> None:
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


# How `Walker.expr` treats a node, by class (decided once per class).
_LEAF, _QUERY, _COLUMN, _DOT, _COLLATE, _OTHER = "leaf", "query", "column", "dot", "collate", "other"
_KINDS: dict[type, str] = {}
# Classes whose nodes never hold another expression (only text and flags), so hold no reference.
_LEAVES = (exp.Literal, exp.Identifier, exp.Null, exp.Boolean, exp.Var)


def _kind_of(cls: type) -> str:
    if issubclass(cls, (exp.Query, exp.Values, exp.Subquery)):
        return _QUERY
    if issubclass(cls, exp.Column):
        return _COLUMN
    if issubclass(cls, exp.Dot):
        return _DOT
    if issubclass(cls, exp.Collate):
        return _COLLATE
    if cls in _LEAVES:  # exactly these classes: a subclass may carry more
        return _LEAF
    return _OTHER


def _kind(reads: frozenset[Read], uncertain: bool) -> AccessKind:
    """A name that may belong to several tables is ambiguous; a merged USING column is not."""
    return "ambiguous" if uncertain and len({r[:2] for r in reads}) > 1 else "column"


def _star_of(projection: exp.Expr) -> str | None:
    """'' for `*`, the folded qualifier for `t.*`, None for any other select-list item."""
    if isinstance(projection, exp.Star):
        return ""
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        if projection.args.get("db") or projection.args.get("catalog"):
            return None  # a.b.*: schema.table.* or table.column.* (resolved as a column reference)
        return fold(projection.args.get("table"))
    return None


def _flat(node: exp.Expr) -> list[exp.Expr]:
    return list(node.expressions) if isinstance(node, exp.Tuple) else [node]
