"""Parsed queries as the checker hands them to the column analysis and the rewrites."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope


def resolve(sql: str) -> exp.Expression:
    """Parse and write schema `public` into every physical table, as the checker does."""
    tree = sqlglot.parse_one(sql, read="postgres")
    for scope in traverse_scope(tree):
        for table in scope.tables:
            physical = scope.sources.get(table.alias_or_name) is table
            if physical and not isinstance(table.this, exp.Func) and not table.db:
                table.set("db", exp.to_identifier("public"))
    return tree
