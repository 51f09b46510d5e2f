"""`pgmcp check-config [--config FILE] [--connect [--strict]]`: is this deployment's setup sound?

Offline it loads the config and the effective policy of every database (any error names the
file, line and key) and prints a one-line summary of each policy; it needs no secrets (an
unset password variable is a note). With `--connect` it also connects to each database
exactly as `serve` does (the same pool code and settings), checks the role (superuser,
BYPASSRLS, dangerous memberships), introspects the live schema, reports what the policy lets
through there, tries every row filter on its table (a filter naming a missing column would
make every read of that table fail), reports every table or column rule and row filter that
matches nothing in the live schema (most often a typo that protects nothing) and runs the
privilege audit (`pgmcp.grants.audit`: can the role read more than the policy allows?). Exit 0
when all is well, 1 when a check fails (an unreachable database, an unsafe role with
`refuse_unsafe_role`, a broken row filter, with `--strict` a rule that matches nothing, an
audit finding with `--strict` or `require_grants`), 2 for usage and config or policy errors.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgmcp.cli.ops import (
    EXIT_FAILED,
    EXIT_OK,
    error_exit,
    load_ops_config,
    shown_dsn,
    shown_path,
    where,
)
from pgmcp.config.model import Config, DatabaseConfig
from pgmcp.db.pools import PoolSet
from pgmcp.db.privileges import check_role
from pgmcp.db.session import quote_ident
from pgmcp.errors import DatabaseError, PgmcpError, UnsafeRole
from pgmcp.grants.audit import audit
from pgmcp.observe.redact import redact
from pgmcp.policy.checker import check
from pgmcp.policy.claims import plannable
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.effective import effective_policies
from pgmcp.policy.unmatched import unmatched_rules
from pgmcp.schema.filtered import filter_snapshot
from pgmcp.schema.introspect import introspect
from pgmcp.schema.snapshot import SchemaSnapshot

LIST_WIDTH = 12  # names listed per category before "(+N more)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (default: $PGMCP_CONFIG, ./pgmcp.yaml)")
    parser.add_argument(
        "--connect", action="store_true",
        help="also connect to each database: check the role and report what the policy allows there",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="with --connect: exit 1 where a policy rule matches nothing in the live schema and on any "
        "privilege-audit finding (the role can read more than the policy allows), instead of warning",
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_ops_config(args.config, need_secrets=args.connect)
        policies = effective_policies(config)
    except PgmcpError as err:
        return error_exit(err)
    print(f"config {shown_path(str(config.path))}: ok, {len(config.databases)} database(s)")
    for unset in config.unset_secrets:
        print(f"note: variable {unset} is not set; serve and check-config --connect need it")
    failures = 0
    for db in config.databases:
        effective = policies[db.name]
        policy = effective.policy
        files = ", ".join(shown_path(f) for f in policy.spec.files)
        print(f"database {db.name}: policy {policy.name} ({files})")
        print(f"  {policy_summary(policy)}")
        if effective.overrides:
            print(f"  config overrides: {'; '.join(effective.overrides)}")
        if args.connect:
            failures += asyncio.run(_check_live(config, db, policy, strict=args.strict))
    if failures:
        print(f"check-config: {failures} check(s) failed")
        return EXIT_FAILED
    print("check-config: ok")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp check-config", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def policy_summary(policy: CompiledPolicy) -> str:
    """Statements, table patterns, hidden columns, row filters and limits on one line."""
    spec = policy.spec
    analyze = " (+analyze)" if spec.explain_analyze else ""
    allow = [r.pattern for r in spec.tables if r.action == "allow"]
    deny = [r.pattern for r in spec.tables if r.action == "deny"]
    hidden = [r.pattern for r in spec.columns if r.action == "deny"]
    only = [r.pattern for r in spec.columns if r.action == "allow"]
    parts = [
        f"statements {', '.join(sorted(spec.statements))}{analyze}",
        f"tables allow {_names(allow)} deny {_names(deny)}",
        f"hidden columns {_names(hidden)}" + (f" (only {_names(only)})" if only else ""),
        f"row filters {_names([f'{f.table} ({f.condition})' for f in spec.row_filters])}",
    ]
    timeout = f"{spec.statement_timeout_ms / 1000:g}s" if spec.statement_timeout_ms else "config default"
    parts.append(f"limits max_rows {spec.max_rows or 'config default'}, statement_timeout {timeout}")
    parts.append(f"search_path {', '.join(policy.search_path)}")
    return "; ".join(parts)


@dataclass(frozen=True)
class LiveReport:
    """What a policy lets through in one live schema."""

    visible: tuple[str, ...]
    hidden_tables: tuple[str, ...]
    hidden_columns: tuple[str, ...]
    filtered: tuple[str, ...]  # "schema.table (condition)"


def live_report(snapshot: SchemaSnapshot, policy: CompiledPolicy) -> LiveReport:
    """Compare the full snapshot with the policy-filtered one."""
    shown = filter_snapshot(snapshot, policy)
    visible = {r.qualified_name: r for r in shown.relations}
    hidden_columns = []
    for rel in snapshot.relations:
        kept = visible.get(rel.qualified_name)
        if kept is not None:
            names = {c.name for c in kept.columns}
            hidden_columns += [f"{rel.qualified_name}.{c.name}" for c in rel.columns if c.name not in names]
    filtered = []
    for rel in shown.relations:
        rf = policy.row_filter(rel.schema, rel.name)
        if rf is not None:
            filtered.append(f"{rel.qualified_name} ({rf.condition})")
    return LiveReport(
        visible=tuple(visible),
        hidden_tables=tuple(r.qualified_name for r in snapshot.relations if r.qualified_name not in visible),
        hidden_columns=tuple(hidden_columns),
        filtered=tuple(filtered),
    )


async def _check_live(config: Config, db: DatabaseConfig, policy: CompiledPolicy, *, strict: bool = False) -> int:
    """Connect, check the role and the policy on the live schema; return the number of failures.

    The connection comes from the same pool code, with the same settings, as `serve`'s
    (`PoolSet.connect`): what works here works there, PgBouncer included.
    """
    search_path = db.search_path or policy.search_path
    pools = PoolSet([db], config.limits, search_paths={db.name: search_path})
    try:
        return await _check_pooled(pools, config, db, policy, strict=strict)
    finally:
        await pools.close()


async def _check_pooled(
    pools: PoolSet, config: Config, db: DatabaseConfig, policy: CompiledPolicy, *, strict: bool
) -> int:
    try:
        await pools.connect(db.name)
    except UnsafeRole:
        for warning in pools.status(db.name).role_warnings:
            print(f"  FAIL unsafe role: {warning} (refuse_unsafe_role is set: pgmcp will not serve it)")
        return 1
    except DatabaseError as err:
        hint = f" (hint: {err.hint})" if err.hint else ""
        print(f"  FAIL cannot connect to database {db.name!r} at {shown_dsn(db)}: {redact(err.message)}{redact(hint)}")
        return 1
    try:
        async with pools.acquire(db.name) as conn:
            report = await check_role(conn)
            version = await conn.fetchval("SHOW server_version")
            print(f"  connected to {shown_dsn(db)} as {report.current_role} (PostgreSQL {version})")
            for warning in report.warnings:
                print(f"  WARN unsafe role: {warning}")
            snapshot = await introspect(conn, db.name)
            failures = await _print_live(conn, snapshot, policy)
            failures += print_unmatched(snapshot, policy, await _catalog_names(conn), strict=strict)
            return failures + await _print_audit(conn, config, db, policy, strict=strict)
    except PgmcpError as err:
        print(f"  FAIL {redact(err.message)}")
        return 1


async def _print_live(conn: Any, snapshot: SchemaSnapshot, policy: CompiledPolicy) -> int:
    live = live_report(snapshot, policy)
    print(
        f"  live schema: {len(snapshot.relations)} relation(s), {len(live.visible)} visible, "
        f"{len(live.hidden_tables)} hidden"
    )
    print(f"    visible tables: {_names(list(live.visible))}")
    print(f"    hidden tables: {_names(list(live.hidden_tables))}")
    print(f"    hidden columns: {_names(list(live.hidden_columns))}")
    print(f"    filtered tables: {_names(list(live.filtered))}")
    if not live.visible:
        print("  WARN the policy shows no relation of this database")
    failures = 0
    for rel in snapshot.relations:
        rf = policy.row_filter(rel.schema, rel.name)
        if rf is None or not policy.table_visible(rel.schema, rel.name):
            continue
        problem = await _try_row_filter(conn, rel.schema, rel.name, snapshot, policy)
        if problem:
            print(f"  FAIL row filter {rel.qualified_name} ({rf.condition}): {problem}")
            failures += 1
    return failures


async def _print_audit(
    conn: Any, config: Config, db: DatabaseConfig, policy: CompiledPolicy, *, strict: bool
) -> int:
    """The privilege audit's findings; they fail the check with --strict or `require_grants`."""
    command = f"pgmcp policy grants --config {shown_path(str(config.path))} --database {db.name}"
    findings = await audit(conn, db.name, policy, command)
    fatal = strict or db.require_grants
    if not findings:
        print("  privilege audit: ok (the role reads nothing the policy denies)")
        return 0
    why = " (require_grants is set)" if db.require_grants else " (--strict)" if strict else ""
    print(f"  privilege audit: {len(findings)} finding(s){why}")
    for finding in findings:
        print(f"  {'FAIL' if fatal else 'WARN'} {redact(str(finding))}")
    return len(findings) if fatal else 0


async def _try_row_filter(
    conn: Any, schema: str, name: str, snapshot: SchemaSnapshot, policy: CompiledPolicy
) -> str | None:
    """Plan (never run) a read of the filtered table: a bad condition fails here, not in use.
    Claim parameters (`:tenant_id`) are planned as NULL."""
    policy = plannable(policy)
    verdict = check(f"SELECT 1 FROM {quote_ident(schema)}.{quote_ident(name)}", policy, snapshot)
    if not verdict.allowed:
        return verdict.reason()
    try:
        async with conn.transaction(readonly=True):
            await conn.execute("SET LOCAL statement_timeout = 5000")
            await conn.fetch(f"EXPLAIN {verdict.executable_sql}")
    except asyncpg.PostgresError as exc:
        return f"PostgreSQL refuses it: {exc}"
    return None


# Every user relation and column, whatever the role may read (pg_class and pg_attribute are
# readable by every role): a deny rule for a relation the grants hide is no typo.
_CATALOG_NAMES = """
SELECT n.nspname, c.relname, a.attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
"""


async def _catalog_names(conn: Any) -> tuple[list[str], list[str]]:
    """("schema.table" names, "schema.table.column" names) of every user relation."""
    rows = await conn.fetch(_CATALOG_NAMES)
    tables = sorted({f"{r['nspname']}.{r['relname']}" for r in rows})
    columns = [f"{r['nspname']}.{r['relname']}.{r['attname']}" for r in rows if r["attname"] is not None]
    return tables, columns


def print_unmatched(
    snapshot: SchemaSnapshot, policy: CompiledPolicy, catalog: tuple[list[str], list[str]] = ([], []), *,
    strict: bool,
) -> int:
    """Report the policy rules that match nothing in the live schema (a typo protects nothing):
    WARN lines, or FAIL lines counted as failures with `--strict`. `catalog` holds the names the
    role cannot read but that exist (see `_catalog_names`)."""
    found = unmatched_rules(policy.spec, snapshot, existing_tables=catalog[0], existing_columns=catalog[1])
    if found:
        print(f"  {len(found)} policy rule(s) match nothing in the live schema:")
    for item in found:
        level = "FAIL" if strict else "WARN"
        print(f"  {level} {where(item.source)}: {item.message}")
    return len(found) if strict else 0


def _names(items: list[str]) -> str:
    if not items:
        return "(none)"
    shown = ", ".join(items[:LIST_WIDTH])
    return shown + (f" (+{len(items) - LIST_WIDTH} more)" if len(items) > LIST_WIDTH else "")



if __name__ == "__main__":
    sys.exit(main())
