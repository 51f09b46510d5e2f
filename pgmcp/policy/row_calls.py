"""`t.name` that is no column of the FROM item `t`: PostgreSQL's call name(t).

PostgreSQL reads a qualified name `t.name` (and `schema.t.name`) by finding the FROM item `t`
(innermost query level outward) and looking for its column `name`; only when `t` has none is
it attribute notation, the function call name(t) on the whole row (transformColumnRef). So
`SELECT u.my_udf FROM users u` runs the user function my_udf. This module finds every such
reference whose column cannot be proven from a schema snapshot:

- `t` is a physical relation the snapshot describes: its columns (renamed by a column alias
  list) and the system columns;
- `t` is a derived table, CTE, VALUES list, LATERAL subquery or pgmcp's row-filter fence: its
  output names, `*` and `x.*` expanded through the snapshot;
- `t` is a table function: its column alias list, or the output names of the few set-returning
  built-ins in `TABLE_FUNCTIONS`.

When the output names cannot all be determined, a name outside the known ones is a possible
call. Without a snapshot nothing is proven (offline check-sql cannot know any relation's
columns), and the caller keeps refusing only dangerous names in `t.name` form.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from pgmcp.policy.column_scopes import levels, physical_key
from pgmcp.policy.names import fold
from pgmcp.policy.rewrite import fence_table
from pgmcp.schema.snapshot import SchemaSnapshot

SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "xmax", "cmin", "cmax", "ctid"})

# Set-returning built-ins often written in FROM without a column alias list, and the columns
# PostgreSQL gives them: a name list, or None for a scalar result named after the FROM item's
# alias (or the function when there is none). tests/test_attribute_calls_pg.py checks each
# against a real server.
TABLE_FUNCTIONS: dict[str, tuple[str, ...] | None] = {
    "generate_series": None,
    "generate_subscripts": None,
    "unnest": None,
    "regexp_split_to_table": None,
    "regexp_matches": None,
    "string_to_table": None,
    "jsonb_object_keys": None,
    "json_object_keys": None,
    # a single named OUT parameter names the column
    "jsonb_array_elements": ("value",),
    "jsonb_array_elements_text": ("value",),
    "json_array_elements": ("value",),
    "json_array_elements_text": ("value",),
    "jsonb_each": ("key", "value"),
    "jsonb_each_text": ("key", "value"),
    "json_each": ("key", "value"),
    "json_each_text": ("key", "value"),
}


@dataclass(frozen=True)
class RowCall:
    """`alias.name` that PostgreSQL reads (or may read) as the call name(alias)."""

    node: exp.Column
    alias: str
    name: str
    why: str  # e.g. "public.users has no column my_udf"


@dataclass(frozen=True)
class _Outputs:
    """A FROM item's columns in order; None stands for a column whose name is not known."""

    names: tuple[str | None, ...]
    complete: bool  # False: the FROM item may have further columns than `names`
    what: str
    extra: frozenset[str] = frozenset()  # valid names that `*` does not expand (system columns)
    ordered: bool = True  # False: `names` are right but their positions are not
    # A table the snapshot does not know: PostgreSQL refuses it as missing (or it is newer than
    # the snapshot, which a refresh fixes); its `t.name` is left to PostgreSQL's error.
    unknown_relation: bool = False

    def has(self, name: str) -> bool:
        return name in self.names or name in self.extra

    @property
    def certain(self) -> bool:
        return self.complete and None not in self.names


def row_calls(tree: exp.Expr, snapshot: SchemaSnapshot | None) -> list[RowCall]:
    """Every qualified column reference of `tree` that is, or may be, a call on a whole row.

    The tree's identifiers must be folded (normalize_identifiers) and its relations resolved
    (schema written into each Table), as the checker does. Without a snapshot: nothing.
    """
    if snapshot is None:
        return []
    columns = [c for c in tree.find_all(exp.Column) if _qualified(c)]
    if not columns:
        return []
    scopes = traverse_scope(tree)
    finder = _Finder(snapshot, {id(s.expression): s for s in scopes})
    owner: dict[int, Scope] = {}
    for scope in scopes:  # innermost first: a correlated column belongs to its own subquery
        for column in scope.columns:
            owner.setdefault(id(column), scope)
    out: list[RowCall] = []
    for column in columns:
        home = owner.get(id(column)) or finder.enclosing(column)
        found = finder.call(column, home)
        if found is not None:
            out.append(found)
    return out


def _qualified(column: exp.Column) -> bool:
    if not column.table or not isinstance(column.this, exp.Identifier):
        return False
    parent = column.parent
    if isinstance(parent, exp.Dot) and column.arg_key == "this":
        return False  # five or more dotted names: an error in PostgreSQL, no call
    return not (isinstance(parent, exp.Collate) and column.arg_key == "expression")  # COLLATE pg_catalog."C"


class _Finder:
    def __init__(self, snapshot: SchemaSnapshot, scopes: dict[int, Scope]) -> None:
        self.snapshot = snapshot
        self.scopes = scopes
        self.visiting: set[int] = set()

    def enclosing(self, node: exp.Expr) -> Scope | None:
        parent = node.parent
        while parent is not None:
            scope = self.scopes.get(id(parent))
            if scope is not None:
                return scope
            parent = parent.parent
        return None

    def call(self, column: exp.Column, scope: Scope | None) -> RowCall | None:
        alias = fold(column.args.get("table"))
        name = fold(column.this)
        schema = fold(column.args.get("db")) if column.args.get("db") else None
        found = self._find(scope, alias, schema) if scope is not None else None
        shown = f"{schema}.{alias}" if schema else alias
        if found is None:
            if schema is not None:
                return None  # schema.t.name names no FROM item: PostgreSQL raises an error, calls nothing
            return RowCall(column, alias, name, f"no FROM item visible here is called {alias}")
        outputs = self._outputs(*found)
        if outputs.has(name) or outputs.unknown_relation:
            return None
        if outputs.certain:
            return RowCall(column, shown, name, f"{outputs.what} has no column {name}")
        return RowCall(column, shown, name, f"the columns of {outputs.what} cannot all be determined")

    def _find(self, scope: Scope, alias: str, schema: str | None) -> tuple[exp.Expr, exp.Expr | Scope] | None:
        for level in levels(scope):
            for key, node, source in _sources(level):
                if schema is None and key == alias:
                    return node, source
                if schema is not None and physical_key(source) == (schema, alias) and not node.alias:
                    return node, source
        return None

    # -- output columns ----------------------------------------------------------------------

    def _outputs(self, node: exp.Expr, source: exp.Expr | Scope) -> _Outputs:
        if id(source) in self.visiting:
            return _Outputs((), False, "a recursive reference")
        self.visiting.add(id(source))
        try:
            base = self._base(source)
        finally:
            self.visiting.discard(id(source))
        # sqlglot names a derived table by its query; the alias sits on the enclosing Subquery
        holder = node.parent if isinstance(node, exp.Query) and isinstance(node.parent, exp.Subquery) else node
        return _renamed(base, holder.args.get("alias") if holder is not None else None)

    def _base(self, source: exp.Expr | Scope) -> _Outputs:
        if isinstance(source, Scope):
            return self._scope_outputs(source)
        if not isinstance(source, exp.Table):
            return _Outputs((), False, "this FROM item")
        key = physical_key(source)
        if key is not None:
            relation = self.snapshot.relation(*key)
            if relation is None:
                return _Outputs((), False, f"{key[0]}.{key[1]}", unknown_relation=True)
            names = tuple(c.name for c in relation.columns)
            return _Outputs(names, True, relation.qualified_name, SYSTEM_COLUMNS)
        if isinstance(source.this, exp.Func):
            return _function_outputs(source.this, source)
        return _Outputs((), False, f"FROM item {source.alias_or_name}")

    def _scope_outputs(self, scope: Scope) -> _Outputs:
        expression = scope.expression
        parent = expression.parent
        fenced = fence_table(parent) if isinstance(parent, exp.Subquery) else None
        if fenced is not None:
            return self._base(fenced)
        if isinstance(expression, exp.Lateral):
            inner = expression.this
            if isinstance(inner, exp.Subquery):
                query = self._query_outputs(inner.this)
                return _renamed(query, inner.args.get("alias"))
            if isinstance(inner, exp.Func):
                return _function_outputs(inner, expression)
            return _Outputs((), False, "this LATERAL item")
        if isinstance(expression, exp.Unnest):
            return _unnest_outputs(expression)
        if isinstance(expression, exp.Values):
            rows = expression.expressions
            width = len(rows[0].expressions) if rows and isinstance(rows[0], exp.Tuple) else 0
            return _Outputs(tuple(f"column{i + 1}" for i in range(width)), width > 0, "the VALUES list")
        while isinstance(parent, exp.SetOperation):
            # a recursive CTE's reference to itself is scoped to the anchor branch
            expression, parent = parent, parent.parent
        outputs = self._query_outputs(expression)
        if isinstance(parent, exp.CTE):  # WITH c(a, b) AS (...): the CTE's own column list
            outputs = _renamed(outputs, parent.args.get("alias"))
        return outputs

    def _query_outputs(self, query: exp.Expr) -> _Outputs:
        while isinstance(query, (exp.SetOperation, exp.Subquery)):
            query = query.this  # a set operation's columns are named by its first branch
        what = f"the subquery {_alias_of(query)}".rstrip()
        if not isinstance(query, exp.Select):
            return _Outputs((), False, what)
        names: list[str | None] = []
        complete = ordered = True
        for projection in query.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                expanded = self._star(query, projection)
                names += expanded.names
                complete = complete and expanded.complete
                ordered = ordered and expanded.ordered and expanded.complete
            else:
                names.append(_output_name(projection))
        return _Outputs(tuple(names), complete, what, ordered=ordered)

    def _star(self, query: exp.Select, star: exp.Expr) -> _Outputs:
        scope = self.scopes.get(id(query))
        if scope is None:
            return _Outputs((), False, "", ordered=False)
        wanted = fold(star.args.get("table")) if isinstance(star, exp.Column) else None
        names: list[str | None] = []
        complete = True
        for key, node, source in _sources(scope):
            if wanted is not None and key != wanted:
                continue
            outputs = self._outputs(node, source)
            names += outputs.names
            complete = complete and outputs.complete
        joins = query.args.get("joins") or []
        # USING/NATURAL put the merged join columns first: the names are right, their order is not
        merged = wanted is None and any(j.args.get("using") or j.args.get("method") == "NATURAL" for j in joins)
        return _Outputs(tuple(names), complete, "", ordered=not merged)


def _sources(scope: Scope) -> list[tuple[str, exp.Expr, exp.Expr | Scope]]:
    """(alias, referencing node, source) of each FROM item of one query level.

    Only FROM items count: a CTE that no FROM clause of this level names is not visible as `t`
    (sqlglot's `scope.sources` would list it). A table function's arguments see the FROM items
    of the query around it, the next level out.
    """
    pairs = scope.selected_sources.items() if scope.selected_sources else ()
    return [(alias, node, src) for alias, (node, src) in pairs]


def _output_name(projection: exp.Expr) -> str | None:
    """The column name PostgreSQL gives a select-list item, when it is certain (FigureColname)."""
    if isinstance(projection, exp.Alias):
        return fold(projection.args.get("alias"))
    if isinstance(projection, (exp.Cast, exp.Paren)):
        return _output_name(projection.this)
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Identifier):
        return fold(projection.this)
    if isinstance(projection, exp.Dot) and isinstance(projection.expression, exp.Identifier):
        return fold(projection.expression)
    return None  # function results, literals, operators: a name sqlglot might not reproduce


def _renamed(base: _Outputs, alias: object) -> _Outputs:
    """Apply a column alias list: it renames the first columns in order, the rest keep their names."""
    columns = alias.columns if isinstance(alias, exp.TableAlias) else []
    if not columns:
        return base
    renamed = tuple(fold(c.this if isinstance(c, exp.ColumnDef) else c) for c in columns)
    if any(isinstance(c, exp.ColumnDef) for c in columns):
        # AS r(a int, ...): a column definition list defines every column of the function
        return _Outputs(renamed, True, base.what)
    if not base.ordered:
        return _Outputs(renamed, False, base.what, ordered=False)
    return _Outputs(renamed + base.names[len(renamed) :], base.complete, base.what, base.extra)


def _function_outputs(func: exp.Expr, item: exp.Expr) -> _Outputs:
    """Columns of a table function before renaming (`item`, its Table or Lateral, holds the alias)."""
    name = _function_name(func)
    alias = item.args.get("alias")
    alias_name = fold(alias.this) if isinstance(alias, exp.TableAlias) and alias.this else None
    known = TABLE_FUNCTIONS.get(name, ()) if name else ()
    what = f"the table function {name or 'call'}"
    if known == () or (name == "unnest" and len(func.expressions) != 1):
        return _Outputs((), False, what)
    names = known if known is not None else (alias_name or str(name),)
    return _Outputs((*names, *(["ordinality"] if item.args.get("ordinality") else [])), True, what)


def _unnest_outputs(unnest: exp.Unnest) -> _Outputs:
    alias = unnest.args.get("alias")
    columns = [fold(c) for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    offset = unnest.args.get("offset")
    if isinstance(offset, exp.Identifier):  # WITH ORDINALITY AS u(v, i): sqlglot keeps i here
        columns.append(fold(offset))
        offset = None
    if columns and offset is None:
        return _Outputs(tuple(columns), True, "the unnest call")
    if len(unnest.expressions) != 1:
        return _Outputs(tuple(columns), False, "the unnest call")
    alias_name = fold(alias.this) if isinstance(alias, exp.TableAlias) and alias.this else "unnest"
    names = columns or [alias_name]
    return _Outputs((*names, *(["ordinality"] if offset else [])), True, "the unnest call")


def _function_name(func: exp.Expr) -> str | None:
    if isinstance(func, exp.Anonymous):
        return fold(func.this) if isinstance(func.this, exp.Identifier) else str(func.this).lower()
    if isinstance(func, (exp.GenerateSeries, exp.ExplodingGenerateSeries)):
        return "generate_series"
    return None


def _alias_of(query: exp.Expr) -> str:
    parent = query.parent
    while isinstance(parent, (exp.SetOperation, exp.Subquery)) and not parent.args.get("alias"):
        parent = parent.parent
    alias = parent.args.get("alias") if parent is not None else None
    return fold(alias.this) if isinstance(alias, exp.TableAlias) and alias.this else ""
