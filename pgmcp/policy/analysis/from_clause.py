"""The FROM clause of one query level: its items and joins (parse_clause.c, transformFromClause).

Relations (resolved and written back, or a CTE of that name), derived tables, LATERAL items,
table functions and ROWS FROM (their arguments see the items to their left), VALUES lists,
and joins: USING and NATURAL columns read both sides, an aliased join hides its members, a
parenthesised join hangs its join list on its first member (sqlglot's shape).
"""

from __future__ import annotations

from sqlglot import exp

from pgmcp.policy.analysis.items import Item, derived_item, join_item, physical_item
from pgmcp.policy.analysis.model import AnalysisError
from pgmcp.policy.analysis.names import RelationRef, fold, resolve_table
from pgmcp.policy.analysis.outputs import alias_columns, function_columns, function_name
from pgmcp.policy.analysis.scope import Env, Level, WalkState


class FromClause(WalkState):
    """Builds the FROM items of a query level (the walk's first half)."""

    def _from_clause(self, node: exp.Expr, outer: Level | None, env: Env | None) -> list[Item]:
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
                self.expr(on, Level(outer, [left, right], env))
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
        self, node: exp.Expr, outer: Level | None, env: Env | None, left: list[Item], *, members: bool = True
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
        lateral = Level(outer, list(left), env)
        alias, columns, _ = alias_columns(node.args.get("alias"))
        if isinstance(node, exp.Table):
            return self._table(node, outer, env, lateral, alias, columns)
        if isinstance(node, exp.Subquery):
            fenced = self.fences.get(id(node))
            if fenced is not None:
                return self._fence(node, fenced, outer, env, alias, columns)
            inner = node.this
            if not isinstance(inner, exp.Select) and (inner.args.get("joins") or isinstance(inner, exp.Table)):
                # a parenthesised join (its first member carries the join list), maybe aliased
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

    def _fence(
        self, node: exp.Subquery, table: exp.Table, outer: Level | None, env: Env | None,
        alias: str | None, columns: list[str],
    ) -> Item:
        """A row-filter fence the checker wrote (known by identity): read as the table it fences.

        Its condition is the policy's: resolved (relations, calls on rows) but not counted as
        the user's column reads.
        """
        item = self._relation(table, alias, columns, fenced=True)
        inner = self._relation(table, fold(table.alias), [], fenced=True)
        self.out.relations.pop()  # the same reference, recorded once
        where = node.this.args.get("where") if isinstance(node.this, exp.Select) else None
        if isinstance(where, exp.Where):
            counted = len(self.out.accesses)
            self.expr(where.this, Level(outer, [inner], env))
            del self.out.accesses[counted:]
        self.tables.update(id(t) for t in node.find_all(exp.Table))
        self.columns.update(id(c) for c in node.find_all(exp.Column))
        return item

    def _table(
        self, node: exp.Table, outer: Level | None, env: Env | None, lateral: Level,
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
        self, func: exp.Expr, call: exp.Expr, item: exp.Expr, lateral: Level, alias: str | None, columns: list[str]
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
