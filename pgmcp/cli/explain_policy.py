"""`pgmcp explain-policy [--config FILE --database NAME | --policy FILE...] [--format text|json] "SQL"`.

The full story of one decision: every rule that matched while judging the statement (the
verdict's trace: tables, functions, row filters, the row cap) and every violation, each
with the policy file, line and key it lives at; the verdict; and the SQL that would run
after rewriting. With `--config` the live schema is used when the database is reachable
(as pgmcp itself would judge); `--offline` skips it. Exit 0 allowed, 1 denied, 2 error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from pgmcp.cli.claims_arg import add_claims_argument, with_claims
from pgmcp.cli.ops import (
    EXIT_FAILED,
    EXIT_OK,
    error_exit,
    policy_and_schema,
    shown_path,
    where,
)
from pgmcp.errors import PgmcpError, SourceLocation
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.verdict import Verdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", metavar="SQL", help="one SQL statement ('-' reads it from stdin)")
    parser.add_argument("--config", metavar="FILE", help="config file naming the database and its policies")
    parser.add_argument("--database", metavar="NAME", help="the configured database whose policy applies")
    parser.add_argument(
        "--policy", metavar="FILE", action="append", default=[],
        help="policy file or shipped name (repeat to merge, as a config's policies list does)",
    )
    parser.add_argument("--offline", action="store_true", help="with --config: do not read the live schema")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_claims_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        sql = sys.stdin.read() if args.sql == "-" else args.sql
        policy, snapshot = policy_and_schema(
            args, baseline_by_default=False, notice="warning", schema_errors_fatal=True
        )
        policy = with_claims(policy, args.claims)
    except PgmcpError as err:
        return error_exit(err)
    verdict = check(sql, policy, snapshot)
    if args.format == "json":
        print(json.dumps(explanation(verdict, policy, snapshot is not None), indent=2))
    else:
        print(render_text(verdict, policy, snapshot is not None))
    return EXIT_OK if verdict.allowed else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp explain-policy", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _source(source: SourceLocation | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {"file": shown_path(source.file), "line": source.line, "key": source.key_path}


def explanation(verdict: Verdict, policy: CompiledPolicy, live_schema: bool) -> dict[str, Any]:
    """The decision as JSON-ready data (what `--format json` prints)."""
    return {
        "sql": verdict.sql,
        "policy": policy.name,
        "policy_files": [shown_path(f) for f in policy.spec.files],
        "live_schema": live_schema,
        "allowed": verdict.allowed,
        "statement_kind": verdict.statement_kind,
        "relations": list(verdict.relations),
        "functions": list(verdict.functions),
        "trace": [
            {
                "rule": t.rule, "name": t.name, "effect": t.effect, "detail": t.detail,
                "source": _source(t.source),
            }
            for t in verdict.trace
        ],
        "violations": [{**v.to_dict(), "source": _source(v.source)} for v in verdict.violations],
        "rewritten_sql": verdict.rewritten_sql,
        "executable_sql": verdict.executable_sql if verdict.allowed else None,
    }


def render_text(verdict: Verdict, policy: CompiledPolicy, live_schema: bool) -> str:
    """The decision for a terminal: trace, violations, verdict, rewritten SQL."""
    files = ", ".join(shown_path(f) for f in policy.spec.files)
    schema = "live schema" if live_schema else "no live schema"
    lines = [f"policy {policy.name} ({files}; {schema})", f"sql: {verdict.sql.strip()}", "", "rules matched:"]
    for t in verdict.trace:
        at = where(t.source) or "built-in"
        lines.append(f"  {t.effect:7} {t.rule} {t.name}: {t.detail}")
        lines.append(f"          at {at}")
    if not verdict.trace:
        lines.append("  (none)")
    if verdict.violations:
        lines += ["", "violations:"]
        for v in verdict.violations:
            pos = f"{v.line}:{v.column} " if v.line is not None else ""
            lines.append(f"  {pos}{v.rule} {v.name}: {v.message}")
            lines.append(f"          at {where(v.source) or 'built-in'}")
    lines += ["", f"verdict: {'allowed' if verdict.allowed else 'denied'}"]
    if verdict.allowed:
        if verdict.rewritten_sql is not None:
            lines += ["rewritten SQL (what runs):", f"  {verdict.rewritten_sql}"]
        else:
            lines.append("runs as written (no rewrite)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
