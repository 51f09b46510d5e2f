"""The effective policy in readable form (the `pgmcp://{database}/policy` resource)."""

from __future__ import annotations

from pgmcp.errors import SourceLocation
from pgmcp.policy.compiler import CompiledPolicy


def _where(source: SourceLocation | None) -> str:
    if source is None:
        return ""
    line = f":{source.line}" if source.line is not None else ""
    return f"  ({source.file}{line})"


def describe_policy(policy: CompiledPolicy) -> str:
    """Every rule of the effective policy, with the file and line it comes from."""
    spec = policy.spec
    lines = [f"policy {spec.name}"]
    if spec.description:
        lines.append(f"  {spec.description}")
    lines.append(f"files: {', '.join(spec.files) or '(built-in)'}")
    analyze = " (EXPLAIN ANALYZE allowed)" if spec.explain_analyze else ""
    lines.append(f"statements: {', '.join(sorted(spec.statements))}{analyze}")
    lines.append(f"search_path: {', '.join(spec.search_path)}")
    lines.append("tables (deny wins; relations no allow rule matches are denied):")
    tables = [f"  {r.action:5} {r.pattern}{_where(r.source)}" for r in spec.tables]
    lines += tables or ["  (none: every relation denied)"]
    lines.append("columns:")
    lines += [f"  {r.action:5} {r.pattern}{_where(r.source)}" for r in spec.columns] or ["  (no column rules)"]
    lines.append("row filters (every read of the table sees only these rows):")
    lines += [f"  {f.table}: {f.condition}{_where(f.source)}" for f in spec.row_filters] or ["  (none)"]
    lines.append("functions (the built-in dangerous set is always denied; built-in safe functions allowed):")
    lines += [f"  {r.action:5} {r.pattern}{_where(r.source)}" for r in spec.functions] or ["  (no extra rules)"]
    timeout = f"{spec.statement_timeout_ms / 1000:g}s" if spec.statement_timeout_ms else "(config default)"
    lines.append(f"limits: max_rows {spec.max_rows or '(config default)'}, statement_timeout {timeout}")
    return "\n".join(lines) + "\n"
