"""`(expr).name`: a field selection or a function call, told apart as PostgreSQL does.

PostgreSQL reads `(expr).name` (and each further `.name` of `(expr).a.name`) as a field
selection when expr's type is a composite type with a field `name` (ParseFuncOrColumn tries
the projection first), and as the call name(expr) otherwise. The checker judges attribute
notation as a possible call unless this module proves the field, with a schema snapshot:

- expr is a column reference (`(address)`, `(c.address)`) of a physical relation the snapshot
  describes, whose type is a composite type the snapshot knows with a field `name`;
- expr is a bare FROM-item name that no FROM item has as a column (`(u)`: a whole-row
  reference, PostgreSQL tries columns first), over a relation with a column `name`;
- expr is itself a proven field selection whose field has such a composite type.

Anything else (no snapshot, an unknown or array type, derived tables, CTEs, table functions,
casts, function results) proves nothing, and the Dot stays a possible call.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

from pgmcp.policy.column_scopes import levels, own_sources, physical_key
from pgmcp.policy.names import fold, is_attribute_notation
from pgmcp.policy.rewrite import fence_table
from pgmcp.schema.snapshot import RelationInfo, SchemaSnapshot


@dataclass(frozen=True)
class FieldSelection:
    """A proven field selection: the field's type, and for `(u).name` the FROM item u.

    `row_alias` is set when expr is a whole-row reference: the field is then the column
    `name` of that FROM item, read as `u.name`.
    """

    node: exp.Dot
    name: str
    type: str
    row_alias: str | None = None


@dataclass(frozen=True)
class _Row:
    alias: str
    relation: RelationInfo


def attribute_dots(tree: exp.Expr) -> list[exp.Dot]:
    """Every attribute-notation Dot in `tree` (see `names.is_attribute_notation`)."""
    return [d for d in tree.find_all(exp.Dot) if is_attribute_notation(d)]


def field_selections(
    tree: exp.Expr, snapshot: SchemaSnapshot | None, dots: list[exp.Dot] | None = None
) -> dict[int, FieldSelection]:
    """The attribute-notation Dots of `tree` proven to be field selections, by id.

    The tree's identifiers must be folded (normalize_identifiers) and its relations resolved
    (schema written into each Table), as the checker does before judging functions.
    """
    dots = attribute_dots(tree) if dots is None else dots
    if snapshot is None or not dots:
        return {}
    resolver = _Resolver(snapshot, {id(s.expression): s for s in traverse_scope(tree)})
    out: dict[int, FieldSelection] = {}
    for dot in dots:
        found = resolver.field(dot)
        if found is not None:
            out[id(dot)] = found
    return out


class _Resolver:
    def __init__(self, snapshot: SchemaSnapshot, scopes: dict[int, Scope]) -> None:
        self.snapshot = snapshot
        self.scopes = scopes
        self.memo: dict[int, FieldSelection | None] = {}

    def field(self, dot: exp.Dot) -> FieldSelection | None:
        if id(dot) not in self.memo:
            self.memo[id(dot)] = self._field(dot)
        return self.memo[id(dot)]

    def _field(self, dot: exp.Dot) -> FieldSelection | None:
        if not is_attribute_notation(dot):
            return None
        name = fold(dot.expression)
        base = self._value(_unparen(dot.this))
        if isinstance(base, _Row):
            column = base.relation.column(name)
            return None if column is None else FieldSelection(dot, name, column.type, base.alias)
        composite = self.snapshot.composite(base) if base is not None else None
        found = composite.get_field(name) if composite is not None else None
        return None if found is None else FieldSelection(dot, name, found.type)

    def _value(self, node: exp.Expr) -> str | _Row | None:
        """The type text of `node`, or the row of a whole-row reference; None when unproven."""
        if isinstance(node, exp.Dot):
            inner = self.field(node)
            return inner.type if inner is not None else None
        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            return None
        if node.args.get("db") or node.args.get("catalog"):
            return None
        scope = self._scope_of(node)
        if scope is None:
            return None
        name = fold(node.this)
        if node.table:
            relation = self._relation_named(scope, fold(node.args.get("table")))
            column = relation.column(name) if relation is not None else None
            return column.type if column is not None else None
        return self._bare_name(scope, name)

    def _bare_name(self, scope: Scope, name: str) -> str | _Row | None:
        # PostgreSQL: the innermost query level where some FROM item has a column `name` owns
        # it (two there: an error); only when none has one is `name` a whole-row reference.
        for level in levels(scope):
            owners = []
            for _, source in own_sources(level):
                relation = self._relation(source)
                if relation is None:
                    return None  # a FROM item whose columns are unknown might have it
                column = relation.column(name)
                if column is not None:
                    owners.append(column.type)
            if owners:
                return owners[0] if len(owners) == 1 else None
        relation = self._relation_named(scope, name)
        return _Row(name, relation) if relation is not None else None

    def _relation_named(self, scope: Scope, alias: str) -> RelationInfo | None:
        for level in levels(scope):
            for key, source in own_sources(level):
                if key == alias:
                    return self._relation(source)
        return None

    def _relation(self, source: exp.Table | Scope) -> RelationInfo | None:
        if isinstance(source, Scope):
            # pgmcp's own row-filter fence reads exactly the table it fences.
            parent = source.expression.parent
            table = fence_table(parent) if isinstance(parent, exp.Subquery) else None
            if table is None:
                return None
            source = table
        key = physical_key(source)
        return self.snapshot.relation(*key) if key is not None else None

    def _scope_of(self, node: exp.Expr) -> Scope | None:
        parent = node.parent
        while parent is not None:
            scope = self.scopes.get(id(parent))
            if scope is not None:
                return scope if scope.scope_type != ScopeType.UDTF else None
            parent = parent.parent
        return None


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node
