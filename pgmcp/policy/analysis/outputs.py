"""The names of a query's output columns (parse_target.c, FigureColname) and of table functions.

Only certain names are given: a name sqlglot might not reproduce (an operator's `?column?`,
a typed function's spelling) is None, which makes the FROM item's columns incomplete, so a
reference may still reach past it. That costs precision, never safety.
"""

from __future__ import annotations

from sqlglot import exp

from pgmcp.policy.analysis.names import fold

# Set-returning built-ins often written in FROM without a column definition list, and their
# columns: a name list, or None for one scalar column named after the FROM item's alias (or
# the function). tests/test_attribute_calls_pg.py checks each against a real server.
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


def output_name(projection: exp.Expr) -> str | None:
    """The column name PostgreSQL gives a select-list item, when it is certain (FigureColname)."""
    if isinstance(projection, exp.Alias):
        return fold(projection.args.get("alias"))
    if isinstance(projection, exp.Paren):
        return output_name(projection.this)
    if isinstance(projection, exp.Cast) and isinstance(projection.this, (exp.Column, exp.Dot, exp.Paren)):
        return output_name(projection.this)
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Identifier):
        return fold(projection.this)
    if isinstance(projection, exp.Dot) and isinstance(projection.expression, exp.Identifier):
        return fold(projection.expression)
    if isinstance(projection, exp.Anonymous) and isinstance(projection.this, exp.Identifier):
        return fold(projection.this)
    return None


def function_name(func: exp.Expr) -> str | None:
    """The folded name of a table function when it is certain."""
    if isinstance(func, exp.Anonymous):
        return fold(func.this) if isinstance(func.this, exp.Identifier) else str(func.this).lower()
    if isinstance(func, (exp.GenerateSeries, exp.ExplodingGenerateSeries)):
        return "generate_series"
    return None


def function_columns(func: exp.Expr, alias: str | None, ordinality: bool) -> tuple[list[str | None], bool]:
    """A table function's columns before renaming (ExpandColumnRefStar of a function RTE)."""
    name = function_name(func)
    known = TABLE_FUNCTIONS.get(name, ()) if name else ()
    if known == () or (name == "unnest" and len(func.expressions) != 1):
        return [], False
    names: list[str | None] = list(known) if known is not None else [alias or name]
    return [*names, *(["ordinality"] if ordinality else [])], True


def alias_columns(alias: object) -> tuple[str | None, list[str], bool]:
    """(alias name, column alias names, whether they are a column definition list)."""
    if not isinstance(alias, exp.TableAlias):
        return None, [], False
    name = fold(alias.this) if alias.this is not None and alias.name else None
    columns = alias.columns or []
    defs = any(isinstance(c, exp.ColumnDef) for c in columns)
    return name, [fold(c.this if isinstance(c, exp.ColumnDef) else c) for c in columns], defs
