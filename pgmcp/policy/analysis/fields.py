"""`(expr).name`: a field selection or a call, told apart as PostgreSQL does (ParseFuncOrColumn).

PostgreSQL reads `(expr).name` as a field selection when expr is of a composite type with a
field `name`, and as the call name(expr) otherwise. A field is proven here only with a
snapshot: expr a column whose type is a composite the snapshot knows, a whole-row reference to
a relation with a column `name`, or a proven field selection of composite type. Anything
else stays a possible call, judged by the function rules.
"""

from __future__ import annotations

from sqlglot import exp

from pgmcp.policy.analysis.items import NOTHING, Match, Read
from pgmcp.policy.analysis.model import FieldSelection
from pgmcp.policy.analysis.names import fold
from pgmcp.policy.analysis.scope import Level, WalkState


class FieldSelections(WalkState):
    """Proves `(expr).name` field selections (the walk's second half)."""

    def _field(self, dot: exp.Dot, level: Level) -> bool:
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
                self.columns.add(id(base))
                return True
            field_name = fold(dot.expression)
            match = item.lookup(field_name) if item.relation is not None and item.certain else None
            if match is None or not match.certain:
                return False
            info = item.relation.column(_physical_name(match.reads) or "") if item.relation else None
            if info is not None:
                self.out.fields[id(dot)] = FieldSelection(dot, field_name, info.type)
            self._access("column", match.reads, dot, f"({name}).{field_name}")
            self.columns.add(id(base))
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

    def _column_match(self, column: exp.Column, level: Level) -> Match | None:
        """What the column reference `column` (bare or `t.c`) resolves to, if it is a column."""
        name = fold(column.this)
        if column.table:
            item = self._named(level, fold(column.args.get("table")))
            return item.lookup(name) if item is not None else None
        for current in level.chain():
            matches = current.matches(name)
            if matches:
                return matches[0] if len(matches) == 1 else Match(NOTHING, False)
        return None

    def _composite_field(self, dot: exp.Dot, base: exp.Column, column: Match, level: Level) -> bool:
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


def _physical_name(reads: frozenset[Read]) -> str | None:
    return next(iter(reads))[2] if len(reads) == 1 else None
