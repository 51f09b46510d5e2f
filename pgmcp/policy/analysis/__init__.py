"""One resolution pass per statement, read by every rule (see `walk` for PostgreSQL's rules).

`analyse` resolves relations (writing the resolved schema into the tree), every column,
whole-row and `*` reference to the physical columns it reads, `t.name` calls on rows,
proven composite field selections and type references to relations, once. The rules in
`pgmcp.policy.rules` only judge the result.
"""

from __future__ import annotations

from sqlglot import exp

from pgmcp.policy.analysis.model import Access, Analysis, AnalysisError, FieldSelection, RowCall, UnknownColumn
from pgmcp.policy.analysis.names import RelationRef, Unresolved, fold
from pgmcp.policy.analysis.typerefs import TypeRef, implicit_refs, reg_kinds, type_refs
from pgmcp.policy.analysis.walk import Walker
from pgmcp.policy.nodes import Nodes, index
from pgmcp.schema.snapshot import SchemaSnapshot

__all__ = [
    "Access", "Analysis", "AnalysisError", "FieldSelection", "RelationRef", "RowCall", "TypeRef",
    "UnknownColumn", "Unresolved", "analyse", "fold", "implicit_refs", "reg_kinds", "type_refs",
]


def analyse(
    tree: exp.Expr,
    search_path: tuple[str, ...],
    snapshot: SchemaSnapshot | None,
    fences: dict[int, exp.Table] | None = None,
    nodes: Nodes | None = None,
) -> Analysis:
    """Resolve `tree` (a vetted read query). `fences` maps the ids of the row-filter fence
    subqueries the checker wrote itself to the table each one fences: they are read as that
    table, and the policy's condition inside them is not the user's. `nodes` is the tree's
    index (`pgmcp.policy.nodes`), made here when not given."""
    walker = Walker(search_path, snapshot, fences)
    walker.query(tree, None, None)
    # The cross-check: a relation or column reference the walk did not reach is never left
    # unjudged; the statement is refused instead. (Counting first: the walk only records nodes
    # of this tree, so equal counts mean every one was reached.)
    if nodes is None:
        nodes = index(tree)
    tables, columns = nodes.tables, nodes.columns
    if len(walker.columns) != len(columns) or len(walker.tables) != len(tables):
        for node in tables:
            if id(node) not in walker.tables and not isinstance(node.this, exp.Func) and not node.args.get("rows_from"):
                raise AnalysisError(f"the table reference {node.sql('postgres')} is where pgmcp cannot resolve it")
        for column in columns:
            if id(column) not in walker.columns and not _syntax_name(column):
                raise AnalysisError(f"the name {column.sql('postgres')} is where pgmcp cannot resolve it")
    return walker.out


def _syntax_name(column: exp.Column) -> bool:
    """Column nodes sqlglot makes of names that are no column references (a COLLATE's name)."""
    parent = column.parent
    return isinstance(parent, exp.Collate) and column.arg_key == "expression"
