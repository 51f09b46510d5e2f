"""Rewrites of a vetted query: row-filter fences and the row cap, as pure AST functions.

The checker calls these on a tree it has already judged (one read-only query whose physical
tables carry their resolved schema in `table.args["db"]`), then generates SQL with `to_sql`
and judges that text again. Nothing here decides whether a query is allowed.

A row filter replaces every reference to a filtered table by a *fence*:

    (SELECT * FROM schema.table AS _pgmcp_rf WHERE <condition> OFFSET 0) AS <alias>

`OFFSET 0` keeps PostgreSQL from pulling the subquery up and pushing the user's predicates
below the filter, where an error (a failed cast, a division by zero) could reveal a row the
filter hides.

A fence is never recognised by its name or shape in SQL text: the checker records where in
the tree it wrote each fence and the row-cap wrapper (`node_path`), and on the re-check of
the generated text looks at exactly those places (`at_path`), verifying the shape there
(`fence_shape`). A subquery of the same shape anywhere else is the user's.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError

from pgmcp.errors import PolicyDenied
from pgmcp.policy.messages import syntax_message
from pgmcp.policy.parse import parse_text

FENCE_ALIAS = "_pgmcp_rf"
CAP_ALIAS = "_pgmcp_capped"

# Arguments of a Select that a fence never has; any of them set means "not a fence".
_FENCE_FORBIDDEN_ARGS = (
    "with_", "joins", "laterals", "group", "having", "qualify", "windows", "distinct",
    "order", "limit", "locks", "into", "sample", "settings", "kind", "hint", "operation_modifiers",
)


def to_sql(tree: exp.Expression, *, copy: bool = True) -> str:
    """Generate PostgreSQL text for `tree` and prove it re-parses to the same text.

    Function names are kept as written (`normalize_functions=False`: the default would turn
    `"pg_sleep"` into `"PG_SLEEP"`, another function) and comments are dropped. sqlglot's
    generator may change the tree it renders; `copy=False` lets it change `tree` (for a
    caller that drops it) instead of rendering a deep copy.
    """
    text = _generate(tree, copy=copy)
    try:
        trees = [t for t in parse_text(text) if t is not None]
    except SqlglotError as err:
        raise PolicyDenied(f"the rewritten query does not parse again: {syntax_message(err, text)}") from err
    if len(trees) != 1:
        raise PolicyDenied(f"the rewritten query parses as {len(trees)} statements")
    again = _generate(trees[0], copy=False)  # parsed just here, dropped after
    if again != text:
        raise PolicyDenied("the rewritten query does not survive a round trip through the parser")
    return text


_POSTGRES = Postgres()


def generate(tree: exp.Expr, *, copy: bool = True) -> str:
    """PostgreSQL text for `tree`, function names as written, comments dropped (no round trip)."""
    return _generate(tree, copy=copy)


def _generate(tree: exp.Expr, *, copy: bool = True) -> str:
    return _POSTGRES.generate(tree, copy=copy, normalize_functions=False, comments=False)


def filtered_key(table: exp.Table) -> tuple[str, str] | None:
    """(schema, name) of a physical table reference, None for table functions and CTE names."""
    if isinstance(table.this, exp.Func) or not isinstance(table.this, exp.Identifier):
        return None
    if not table.db:
        return None
    return (table.db, table.name)


def apply_row_filters(
    tree: exp.Expression, filters: Mapping[tuple[str, str], exp.Expression]
) -> exp.Expression:
    """A copy of `tree` in which every reference to a filtered table (resolved: `db` set) is fenced.

    `filters` maps (schema, table) as stored in the catalog to a condition whose bare column
    names refer to that table. A filtered table where no fence fits raises `PolicyDenied`.
    """
    out = tree.copy()
    targets = []
    for table in out.find_all(exp.Table):
        key = filtered_key(table)
        if key is not None and key in filters:
            targets.append((table, filters[key]))
    fence_tables(targets)
    return out


def fence_tables(targets: list[tuple[exp.Table, exp.Expression]]) -> list[exp.Subquery]:
    """Replace each table by its fence, in place; the fences, in order.

    Only a table that is a FROM or JOIN item can be fenced; any other position (a
    parenthesised join's first member) raises `PolicyDenied` (fail closed).
    """
    fences: list[exp.Subquery] = []
    for table, condition in targets:
        joins = table.args.get("joins")  # the first member of a parenthesised join carries them
        first_member = isinstance(table.parent, exp.Subquery) and table.arg_key == "this" and bool(joins)
        if not isinstance(table.parent, (exp.From, exp.Join)) and not first_member:
            raise PolicyDenied(
                f"row filter on {table.db}.{table.name}: the table is referenced where pgmcp cannot fence it"
            )
        table.set("joins", None)
        fenced = fence(table, condition)
        if joins:
            fenced.set("joins", joins)
        table.replace(fenced)
        fences.append(fenced)
    return fences


def fence(table: exp.Table, condition: exp.Expression) -> exp.Subquery:
    """The fenced subquery standing for `table` (keeps its alias, or its name as alias)."""
    inner = table.copy()
    alias = inner.args.get("alias")
    inner.set("alias", exp.TableAlias(this=exp.to_identifier(FENCE_ALIAS)))
    if isinstance(alias, exp.TableAlias) and alias.this:
        outer_alias = alias
    else:
        outer_alias = exp.TableAlias(this=table.this.copy())
        if isinstance(alias, exp.TableAlias) and alias.columns:
            outer_alias.set("columns", [c.copy() for c in alias.columns])
    select = exp.Select(
        expressions=[exp.Star()],
        from_=exp.From(this=inner),
        where=exp.Where(this=_bind_to_fence(condition.copy())),
        offset=exp.Offset(expression=exp.Literal.number(0)),
    )
    return exp.Subquery(this=select, alias=outer_alias)


def _bind_to_fence(condition: exp.Expression) -> exp.Expression:
    # A bare column the table lacks would otherwise resolve to an outer query's column (in a
    # LATERAL or correlated position), i.e. to something the user controls.
    for column in list(condition.find_all(exp.Column)):
        if column.table or isinstance(column.this, exp.Star):
            continue
        if column.find_ancestor(exp.Query) is not None:
            continue  # belongs to a subquery inside the condition
        column.set("table", exp.to_identifier(FENCE_ALIAS))
    return condition


def fence_shape(subquery: exp.Expr) -> exp.Table | None:
    """The table the fence `subquery` reads, None when it does not have the shape `fence` writes.

    Only ever asked of a node the checker knows it wrote (by its place in the tree).
    """
    if not isinstance(subquery, exp.Subquery):
        return None
    alias = subquery.args.get("alias")
    if not isinstance(alias, exp.TableAlias) or not alias.this:
        return None
    select = subquery.this
    if not isinstance(select, exp.Select) or any(select.args.get(a) for a in _FENCE_FORBIDDEN_ARGS):
        return None
    if len(select.expressions) != 1 or not isinstance(select.expressions[0], exp.Star):
        return None
    source = select.args.get("from_")
    table = source.this if isinstance(source, exp.From) else None
    if not isinstance(table, exp.Table) or filtered_key(table) is None or table.alias != FENCE_ALIAS:
        return None
    where = select.args.get("where")
    offset = select.args.get("offset")
    if not isinstance(where, exp.Where) or not isinstance(offset, exp.Offset):
        return None
    count = offset.expression
    if not (isinstance(count, exp.Literal) and not count.is_string and count.this == "0"):
        return None
    return table


Path = tuple[tuple[str, int | None], ...]


def node_path(node: exp.Expr) -> Path:
    """Where `node` sits in its tree: the argument names (and list positions) from the root."""
    path: list[tuple[str, int | None]] = []
    while node.parent is not None:
        path.append((str(node.arg_key), node.index))
        node = node.parent
    return tuple(reversed(path))


def at_path(root: exp.Expr, path: Path) -> exp.Expr | None:
    """The node at `path` in `root`, None when the tree has no node there."""
    node: object = root
    for key, index in path:
        if not isinstance(node, exp.Expr):
            return None
        value = node.args.get(key)
        if index is not None:
            value = value[index] if isinstance(value, list) and index < len(value) else None
        node = value
    return node if isinstance(node, exp.Expr) else None


def apply_row_cap(tree: exp.Expression, max_rows: int, *, copy: bool = True) -> tuple[exp.Expression, bool]:
    """Return (copy of `tree` returning at most `max_rows` rows, whether anything changed).

    A missing LIMIT is added, a larger literal LIMIT or FETCH FIRST is lowered, a smaller one
    kept. LIMIT ALL, LIMIT NULL, parameters, expressions and FETCH ... WITH TIES cannot be
    compared, so the query is wrapped: `SELECT * FROM (<query>) AS _pgmcp_capped LIMIT n`.
    `copy=False` changes `tree` itself (for a caller that owns it and drops the original).
    """
    if isinstance(tree, exp.Subquery) and _only_this(tree):
        return apply_row_cap(tree.this, max_rows, copy=copy)
    if not row_cap_needed(tree, max_rows):
        return (tree.copy() if copy else tree), False
    out = tree.copy() if copy else tree
    if not isinstance(out, (exp.Select, exp.SetOperation)):
        return _wrap(out, max_rows), True
    limit = out.args.get("limit")
    if limit is None:
        out.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return out, True
    if isinstance(limit, (exp.Limit, exp.Fetch)):
        current = _literal_count(limit)
        if current is None:
            return _wrap(out, max_rows), True
        if current <= max_rows:
            return out, False
        limit.set("expression" if isinstance(limit, exp.Limit) else "count", exp.Literal.number(max_rows))
        return out, True
    return _wrap(out, max_rows), True


def row_cap_needed(tree: exp.Expression, max_rows: int) -> bool:
    """Whether `apply_row_cap` would change `tree` (without copying it)."""
    if isinstance(tree, exp.Subquery) and _only_this(tree):
        return row_cap_needed(tree.this, max_rows)
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        return True
    limit = tree.args.get("limit")
    if isinstance(limit, (exp.Limit, exp.Fetch)):
        current = _literal_count(limit)
        return current is None or current > max_rows
    return True


def _literal_count(limit: exp.Limit | exp.Fetch) -> int | None:
    """The rows a LIMIT or FETCH FIRST allows when it is a literal count; None when it cannot be
    compared (LIMIT ALL, LIMIT NULL, parameters, expressions, FETCH ... WITH TIES or PERCENT)."""
    if isinstance(limit, exp.Limit):
        return _literal_int(limit.expression)
    options = limit.args.get("limit_options")
    if isinstance(options, exp.LimitOptions) and (options.args.get("with_ties") or options.args.get("percent")):
        return None
    count_node = limit.args.get("count")
    return 1 if count_node is None else _literal_int(count_node)  # FETCH FIRST ROW ONLY: one row


def _literal_int(node: object) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


def _only_this(node: exp.Expression) -> bool:
    return all(key == "this" for key, value in node.args.items() if value)


def _wrap(query: exp.Expression, max_rows: int) -> exp.Select:
    inner = query.this if isinstance(query, exp.Subquery) and _only_this(query) else query
    alias = exp.TableAlias(this=exp.to_identifier(CAP_ALIAS))
    return exp.Select(
        expressions=[exp.Star()],
        from_=exp.From(this=exp.Subquery(this=inner, alias=alias)),
        limit=exp.Limit(expression=exp.Literal.number(max_rows)),
    )
