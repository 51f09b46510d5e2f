"""PGM005: names starting with `_pgmcp_` belong to pgmcp's own rewrites, whatever token spells them.

The token check (`pgmcp.policy.tokens`) refuses identifier tokens, decoded `U&"..."`
identifiers included. This check runs on the tree, where a string-literal or dollar-quoted
alias (`AS '_pgmcp_rf'`, `AS $$_pgmcp_rf$$`) has become an identifier that sqlglot would
print back as a real one. On the re-check of a rewritten statement the only such names
allowed are those inside the fences and the row-cap wrapper the checker itself wrote,
known by their place in the tree, never by their text.
"""

from __future__ import annotations

from collections.abc import Set

from sqlglot import exp

from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import PGM005, violation
from pgmcp.policy.tokens import RESERVED_PREFIX
from pgmcp.policy.verdict import Violation


def reserved_names(parsed: Parsed, tree: exp.Expr, owned: Set[int] = frozenset()) -> list[Violation]:
    """A violation for every `_pgmcp_` name in `tree` outside the nodes in `owned` (by id)."""
    body = parsed.body
    if RESERVED_PREFIX not in body.lower() and not any(c in body for c in "$\\&") and not owned:
        return []  # no token spells the prefix, plainly or escaped (E'\137...', U&'...', $$...$$)
    out: list[Violation] = []
    for node in tree.find_all(exp.Identifier, exp.Var, exp.Anonymous):
        text = node.this if isinstance(node.this, str) else None
        if text is None or not text.lower().startswith(RESERVED_PREFIX) or id(node) in owned:
            continue
        out.append(violation(
            PGM005,
            f"the name {text} is reserved for pgmcp (prefix {RESERVED_PREFIX}), however it is written; rename it",
            *parsed.node_position(node),
        ))
    return out


def owned_names(nodes: list[exp.Expr]) -> frozenset[int]:
    """Ids of every identifier inside `nodes` (the fences and wrapper the checker wrote)."""
    return frozenset(id(i) for node in nodes for i in node.find_all(exp.Identifier))
