"""`check(sql, policy, snapshot)`: one SQL statement in, a `Verdict` out. Pure and fail-closed.

The stages, in order (each one only runs on what the previous ones let through):
1. parse: exactly one statement, EXPLAIN peeled, token-level refusals (`parse.py`);
2. statement kind: root allow-list, no write/INTO/lock anywhere (`rules/statements.py`);
3. relations: resolved like PostgreSQL, schema written into the tree (`names.py`,
   `rules/relations.py`);
4. functions: every call by its spelled, folded name (`rules/functions.py`); with a snapshot,
   `(x).name` proven to select a field of a composite is no call (`fields.py`), and `t.name`
   that is no column of FROM item t is the call name(t) (`row_calls.py`);
5. columns: denied columns, unprovable stars and whole-row references (`rules/columns.py`);
6. rewrites: row-filter fences and the row cap (`rules/limits.py`); the generated text is
   checked again from step 1, and is what runs.
"""

from __future__ import annotations

from typing import cast

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from pgmcp.errors import PolicyDenied
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.fields import attribute_dots, field_selections
from pgmcp.policy.names import function_refs, resolve_relations
from pgmcp.policy.parse import Parsed, parse_statement
from pgmcp.policy.rewrite import to_sql
from pgmcp.policy.row_calls import row_calls
from pgmcp.policy.rules import violation
from pgmcp.policy.rules.columns import column_violations
from pgmcp.policy.rules.functions import attribute_calls, function_violations
from pgmcp.policy.rules.limits import rewrite, verify_rewritten
from pgmcp.policy.rules.relations import relation_violations
from pgmcp.policy.rules.statements import root_kind, writes_in_tree
from pgmcp.policy.verdict import TraceEntry, Verdict, Violation
from pgmcp.schema.snapshot import SchemaSnapshot


def check(sql: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None = None) -> Verdict:
    """Judge one statement. Never raises on bad SQL: every problem is a violation."""
    try:
        return _check(sql, policy, snapshot, recheck=False)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, SqlglotError) as err:
        # An analysis step met a tree shape it does not handle: refuse, never pass.
        message = f"the query could not be analysed ({type(err).__name__}); simplify it"
        return Verdict(sql, False, (violation("PGM003", message),))
    except RecursionError:
        return Verdict(
            sql,
            False,
            (violation("PGM006", "the statement is nested too deeply to be checked; flatten the query"),),
        )


def _check(sql: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None, *, recheck: bool) -> Verdict:
    parsed = parse_statement(sql, allow_reserved=recheck)
    trace = [TraceEntry("PGM003", "sqlglot", "info", line) for line in parsed.log]
    if parsed.leading is not None:
        return _verdict(parsed, root_kind(parsed, policy), trace, "explain" if parsed.explain else None)
    if parsed.tree is None:
        return _verdict(parsed, parsed.violations, trace)
    tree = parsed.tree
    kind = "explain" if parsed.explain else "select"
    violations = root_kind(parsed, policy) + writes_in_tree(parsed)
    if any(v.rule not in ("PGM105", "PGM106") for v in violations):
        return _verdict(parsed, violations, trace, kind)
    dots = attribute_dots(tree) if snapshot is not None else []
    # With a snapshot, `t.name` is proven a column of FROM item t or judged as the call name(t).
    qualified = snapshot is not None and any(c.table for c in tree.find_all(exp.Column))
    try:
        has_ctes = any(isinstance(node, exp.With) for node in parsed.flagged)
        if has_ctes or dots or qualified:
            # CTE names and the FROM items a field selection or `t.name` names are matched by
            # text in sqlglot's scopes: fold them as PostgreSQL does.
            normalize_identifiers(tree, dialect="postgres")
        refs, unresolved = resolve_relations(tree, policy.search_path, snapshot, has_ctes=has_ctes)
        fields = field_selections(tree, snapshot, dots)
        on_rows = row_calls(tree, snapshot) if qualified else []
    except SqlglotError as err:
        violations.append(violation("PGM003", f"the query's scopes cannot be analysed: {err}"))
        return _verdict(parsed, violations, trace, kind)
    violations += relation_violations(parsed, refs, unresolved, policy, snapshot, trace)
    calls = function_refs(tree, parsed.body, fields)
    violations += function_violations(parsed, calls, policy, trace)
    violations += attribute_calls(parsed, tree, policy, fields.values(), on_rows, trace)
    relations = tuple(sorted({f"{r.schema}.{r.name}" for r in refs}))
    functions = tuple(sorted({f"{c.schema}.{c.name}" if c.schema else c.name for c in calls}))
    if not violations:
        try:
            violations += column_violations(parsed, tree, policy, snapshot)
        except SqlglotError as err:
            violations.append(violation("PGM302", f"the columns the query reads cannot be proven: {err}"))
    if violations:
        return _verdict(parsed, violations, trace, kind, relations, functions)
    if recheck:
        violations = verify_rewritten(parsed, tree, refs, policy)
        return _verdict(parsed, violations, trace, kind, relations, functions)
    new_tree, changed, problems = rewrite(parsed, tree, refs, policy, trace)
    if problems or not changed:
        return _verdict(parsed, problems, trace, kind, relations, functions)
    return _rechecked(parsed, new_tree, policy, snapshot, trace, kind, relations, functions)


def _rechecked(
    parsed: Parsed,
    tree: exp.Expr,
    policy: CompiledPolicy,
    snapshot: SchemaSnapshot | None,
    trace: list[TraceEntry],
    kind: str,
    relations: tuple[str, ...],
    functions: tuple[str, ...],
) -> Verdict:
    try:
        text = to_sql(cast(exp.Expression, tree), copy=False)  # the rewritten tree is ours alone
    except PolicyDenied as err:
        return _verdict(
            parsed,
            [violation("PGM502", f"the rewritten query cannot be generated: {err.message}")],
            trace,
            kind,
            relations,
            functions,
        )
    rewritten = (parsed.explain.prefix if parsed.explain else "") + text
    again = _check(rewritten, policy, snapshot, recheck=True)
    if not again.allowed:
        problems = [violation("PGM502", f"the rewritten query failed its re-check: {again.reason()}")]
        return _verdict(parsed, problems, trace, kind, relations, functions)
    capped = policy.max_rows if any(entry.rule == "PGM501" for entry in trace) else None
    return Verdict(parsed.sql, True, (), rewritten, kind, relations, functions, tuple(trace), row_cap=capped)


def _verdict(
    parsed: Parsed,
    violations: list[Violation],
    trace: list[TraceEntry],
    kind: str | None = None,
    relations: tuple[str, ...] = (),
    functions: tuple[str, ...] = (),
) -> Verdict:
    return Verdict(parsed.sql, not violations, tuple(violations), None, kind, relations, functions, tuple(trace))
