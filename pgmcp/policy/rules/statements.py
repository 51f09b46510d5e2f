"""PGM1xx: the statement kind. An allow-list on the root, a deny-list for the whole tree.

sqlglot reads some utility statements as harmless-looking expressions (`LISTEN x` is an
Alias, `CHECKPOINT` a Column), so only the read-query roots are accepted; and a SELECT root
can still hide a write (data-modifying CTE), SELECT INTO or FOR UPDATE anywhere below it.
"""

from __future__ import annotations

from sqlglot import exp

from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.nodes import WRITE_NODES
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import PGM003, PGM101, PGM102, PGM103, PGM104, PGM105, PGM106, violation
from pgmcp.policy.verdict import Violation

ALLOWED_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values)


def root_kind(parsed: Parsed, policy: CompiledPolicy) -> list[Violation]:
    """PGM101/PGM003/PGM105/PGM106 for the root (or the leading keyword) and the EXPLAIN prefix."""
    tree = parsed.tree
    leading = parsed.leading
    out: list[Violation] = []
    if leading is not None:
        # Refused from its first token(s), unparsed: the same codes the parsed roots get.
        if leading.opaque:
            out.append(
                violation(
                    PGM003,
                    f"{leading.words} statements cannot be checked and are refused; only SELECT queries are accepted",
                )
            )
        else:
            out.append(
                violation(
                    PGM101,
                    f"{leading.words} statements are not allowed by policy {policy.name}; "
                    "only SELECT queries are accepted",
                    source=policy.spec.statements_source,
                )
            )
    elif tree is None:
        raise ValueError("root_kind needs a parsed tree or a leading keyword")
    elif not isinstance(tree, ALLOWED_ROOTS):
        if isinstance(tree, exp.Command):
            keyword = str(tree.this).upper()
            out.append(
                violation(
                    PGM003,
                    f"{keyword} statements cannot be checked and are refused; only SELECT queries are accepted",
                )
            )
        elif isinstance(tree, WRITE_NODES):
            kind = type(tree).__name__.upper()
            out.append(
                violation(
                    PGM101,
                    f"{kind} statements are not allowed by policy {policy.name}; only SELECT queries are accepted",
                    source=policy.spec.statements_source,
                )
            )
        else:
            out.append(
                violation(
                    PGM003,
                    "the statement is not a query pgmcp can classify "
                    f"({type(tree).__name__}); only SELECT queries are accepted",
                )
            )
    if parsed.explain is not None:
        if "explain" not in policy.statements:
            out.append(
                violation(
                    PGM105,
                    f"EXPLAIN is not allowed by policy {policy.name}; run the query itself",
                    line=1,
                    column=1,
                    source=policy.spec.statements_source,
                )
            )
        elif parsed.explain.analyze and not policy.explain_analyze:
            out.append(
                violation(
                    PGM106,
                    f"EXPLAIN ANALYZE executes the statement and policy {policy.name} "
                    "does not allow it; use plain EXPLAIN",
                    line=1,
                    column=1,
                )
            )
    elif "select" not in policy.statements:
        out.append(
            violation(
                PGM101,
                f"SELECT is not allowed by policy {policy.name}",
                source=policy.spec.statements_source,
            )
        )
    return out


def writes_in_tree(parsed: Parsed) -> list[Violation]:
    """PGM102/PGM103/PGM104: writes, SELECT INTO and row locks anywhere in the tree."""
    tree = parsed.tree
    assert tree is not None
    out: list[Violation] = []
    for node in parsed.flagged:
        if isinstance(node, exp.With):
            continue
        if isinstance(node, exp.Into):
            out.append(
                violation(
                    PGM103,
                    "SELECT ... INTO creates a table; remove the INTO clause",
                    *parsed.node_position(node),
                )
            )
        elif isinstance(node, exp.Lock):
            out.append(
                violation(
                    PGM104,
                    "FOR UPDATE/SHARE takes row locks; remove the locking clause",
                    *parsed.node_position(node),
                )
            )
        elif isinstance(node, WRITE_NODES) and node is not tree:
            kind = type(node).__name__.upper()
            out.append(
                violation(
                    PGM102,
                    f"a {kind} statement inside the query is not allowed; pgmcp runs read-only queries",
                    *parsed.node_position(node),
                )
            )
    return out
