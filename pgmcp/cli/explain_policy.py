"""`pgmcp explain-policy [--config FILE --database NAME | --policy FILE...] [--format text|json] "SQL"`.

The full story of one decision: every rule that matched while judging the statement (the
verdict's trace: tables, functions, row filters, the row cap) and every violation, each
with the policy file, line and key it lives at; the verdict; and the SQL that would run
after rewriting. With `--config` the live schema is used when the database is reachable
(as pgmcp itself would judge); `--offline` skips it. Exit 0 allowed, 1 denied, 2 error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from pgmcp.cli.ops import (
    EXIT_FAILED,
    EXIT_OK,
    connect_database,
    database_config,
    database_policy,
    error_exit,
    load_ops_config,
    policy_from_refs,
    shown_path,
    where,
)
from pgmcp.config import DatabaseConfig
from pgmcp.errors import DatabaseError, PgmcpError, SourceLocation, UsageError
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.verdict import Verdict
from pgmcp.redact import redact
from pgmcp.schema.introspect import introspect
from pgmcp.schema.snapshot import SchemaSnapshot


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


def run(args: argparse.Namespace) -> int:
    try:
        sql = sys.stdin.read() if args.sql == "-" else args.sql
        policy, snapshot = _policy_and_schema(args)
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


def _policy_and_schema(args: argparse.Namespace) -> tuple[CompiledPolicy, SchemaSnapshot | None]:
    if args.policy and (args.config or args.database):
        raise UsageError("give either --policy or --config/--database, not both")
    if args.policy:
        return policy_from_refs(args.policy), None
    config = load_ops_config(args.config)
    db = database_config(config, args.database)
    policy = database_policy(config, db)
    if args.offline:
        return policy, None
    return policy, asyncio.run(_live_schema(db))


async def _live_schema(db: DatabaseConfig) -> SchemaSnapshot | None:
    try:
        conn = await connect_database(db)
    except DatabaseError as err:
        print(f"warning: judging without the live schema: {redact(err.message)}", file=sys.stderr)
        return None
    try:
        return await introspect(conn, db.name)
    finally:
        await conn.close()


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
