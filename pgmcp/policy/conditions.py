"""Checks on what a policy document writes as patterns and SQL, at load time.

A policy that cannot mean what its author thinks must fail when it is loaded, with the line,
not silently match nothing at check time: table globs are `schema.name`, column globs
`schema.table.column`, function globs `name` or `schema.name`; a row filter is one boolean
SQL expression over the table's own (bare) columns, with no subquery; it may name claims of the
caller's token as `:claim_name` (bound per principal by `pgmcp.policy.claims`).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.errors import PolicyError, SourceLocation
from pgmcp.policy.messages import syntax_message

_PART = re.compile(r"^[^\s.\"']+$")
_GLOB_CHARS = re.compile(r"[*?\[\]]")
RESERVED_PREFIX = "_pgmcp_"
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_EXAMPLES = {
    "table": '"public.orders" or "public.*" (schema.name)',
    "column": '"public.users.password_hash" or "*.*.ssn" (schema.table.column)',
    "function": '"st_*" (any schema) or "public.my_func" (schema.name)',
    "row filter table": '"public.orders" (schema.table, no globs)',
}


def check_pattern(pattern: str, kind: str, parts: tuple[int, ...], where: SourceLocation) -> None:
    """Raise PolicyError unless `pattern` has one of `parts` dot-separated, non-empty parts."""
    pieces = pattern.split(".")
    if len(pieces) not in parts or not all(_PART.match(p) for p in pieces):
        wanted = " or ".join(str(n) for n in parts)
        raise PolicyError(
            f"{kind} pattern {pattern!r} must have {wanted} dot-separated part(s), without spaces or quotes",
            where,
            hint=f"write e.g. {_EXAMPLES[kind]}",
        )
    if kind == "row filter table" and _GLOB_CHARS.search(pattern):
        raise PolicyError(
            f"row filter table {pattern!r} must name one table, not a glob",
            where,
            hint=f"write e.g. {_EXAMPLES[kind]}; add one filter per table",
        )


def claim_name(placeholder: exp.Placeholder) -> str | None:
    """The claim a `:name` parameter names; None for any other placeholder (`?`, `%(x)s`)."""
    name = placeholder.this
    if placeholder.args.get("jdbc") or not isinstance(name, str) or not _CLAIM_NAME.match(name):
        return None
    return name


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def check_condition(condition: str, where: SourceLocation) -> None:
    """Raise PolicyError unless `condition` is one boolean SQL expression fit for a row filter."""
    hint = 'write a condition over the table\'s own columns, e.g. "tenant_id = 1 AND NOT deleted"'
    try:
        parsed = [s for s in sqlglot.parse(condition, read="postgres") if s is not None]
    except SqlglotError as exc:
        raise PolicyError(f"row filter is not valid SQL: {syntax_message(exc, condition)}", where, hint=hint) from exc
    if len(parsed) != 1:
        raise PolicyError("row filter must be one condition, not several statements", where, hint=hint)
    root = _unwrap(parsed[0])
    if root.find(exp.Query) is not None or isinstance(root, exp.SubqueryPredicate):
        raise PolicyError(
            "row filter must not contain a subquery",
            where,
            hint="a subquery would read other tables outside the policy; filter on this table's columns",
        )
    boolean_like = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Column, exp.Cast, exp.Func)
    if not isinstance(root, boolean_like) or isinstance(root, exp.AggFunc):
        raise PolicyError(
            f"row filter is not a boolean expression (it is {type(root).__name__})",
            where,
            hint=hint,
        )
    if root.find(exp.AggFunc) is not None or root.find(exp.Window) is not None:
        raise PolicyError("row filter must not use aggregate or window functions", where, hint=hint)
    placeholders = list(root.find_all(exp.Placeholder))
    if root.find(exp.Parameter) is not None or any(p.args.get("jdbc") or not p.this for p in placeholders):
        raise PolicyError(
            "row filter must not use positional parameters ($1, ?, %s)", where,
            hint="write the value itself, or name a claim of the caller's token as :claim_name",
        )
    for placeholder in placeholders:
        if claim_name(placeholder) is None:
            raise PolicyError(f"claim parameter {placeholder.sql(dialect='postgres')} is not a plain :name", where,
                              hint="claim names are letters, digits and _, e.g. :tenant_id")
    for column in root.find_all(exp.Column):
        if column.table:
            raise PolicyError(
                f"row filter column {column.sql(dialect='postgres')} is qualified",
                where,
                hint=f"write the bare column name ({column.name}); the filter applies to its own table",
            )
    for ident in root.find_all(exp.Identifier):
        if ident.name.lower().startswith(RESERVED_PREFIX):
            raise PolicyError(
                f"identifier {ident.name!r} is reserved",
                where,
                hint=f"names starting with {RESERVED_PREFIX} belong to pgmcp's rewrites",
            )
