"""`pgmcp policy test POLICY... [--database-dsn DSN | --config FILE --database NAME]`.

Runs the `tests:` list of each policy document with the real checker (`pgmcp.policy.testing`):
one PASS/FAIL line per test, the details of each failure, and a final `N passed, N failed`.
With a database the checker also sees the live schema (stars expand, views resolve), and
tests that list expected `rows:` are executed: only SQL the policy allowed, exactly as
rewritten (row filters, row cap), in a READ ONLY transaction with a statement timeout.
Row filters that name claims (`tenant_id = :tenant_id`) are bound with the test's own
`claims:`, else with `--claims`, else with none (the table is then refused, as for a token
without the claim). Exit 0 when every test passes, 1 when any fails, 2 for usage, policy or connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import asyncpg

from pgmcp.cli.claims_arg import add_claims_argument, parse_claims
from pgmcp.cli.ops import (
    EXIT_FAILED,
    EXIT_OK,
    connect_database,
    connect_dsn,
    database_config,
    error_exit,
    load_ops_config,
    shown_path,
)
from pgmcp.db.session import search_path_value
from pgmcp.errors import PgmcpError, UsageError
from pgmcp.observe.redact import redact
from pgmcp.policy.claims import bind_spec_filters
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.effective import effective_policy, standalone_policy
from pgmcp.policy.testing import TestOutcome, compare_rows, outcome_line, run_test, summary_line
from pgmcp.schema.introspect import introspect

DEFAULT_TIMEOUT_MS = 5000  # for executing tests when the policy sets no statement_timeout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policies", nargs="+", metavar="POLICY", help="policy files or shipped names")
    parser.add_argument("--database-dsn", metavar="DSN", help="run against this database (postgresql://...)")
    parser.add_argument("--config", metavar="FILE", help="take the database from this config")
    parser.add_argument("--database", metavar="NAME", help="the configured database to run against")
    add_claims_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        if args.database_dsn and (args.config or args.database):
            raise UsageError("give either --database-dsn or --config/--database, not both")
        claims = parse_claims(args.claims)
        policies = [(ref, _policy(args, ref)) for ref in args.policies]
        outcomes = asyncio.run(_run_all(args, policies, claims))
    except PgmcpError as err:
        return error_exit(err)
    print(summary_line(outcomes))
    return EXIT_OK if all(o.passed for o in outcomes) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp policy test", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _policy(args: argparse.Namespace, ref: str) -> CompiledPolicy:
    """The policy document `ref`, under the config overrides (search_path, limits) of the
    database it is tested against when that database comes from `--config/--database`."""
    if args.config or args.database:
        config = load_ops_config(args.config)
        return effective_policy(config, database_config(config, args.database), [ref]).policy
    return standalone_policy([ref]).policy


async def _run_all(
    args: argparse.Namespace, policies: list[tuple[str, CompiledPolicy]], claims: dict[str, Any]
) -> list[TestOutcome]:
    conn = await _connect(args)
    try:
        snapshot = await introspect(conn, "policy-test") if conn is not None else None
        outcomes: list[TestOutcome] = []
        skipped_rows = 0
        for ref, policy in policies:
            if not policy.spec.tests:
                print(f"{ref}: no tests")
            bound: dict[str, CompiledPolicy] = {}  # the policy per set of claims, bound once
            for test in policy.spec.tests:
                # The test's own claims (as a token carrying them), else --claims, else none.
                given = test.claims if test.claims is not None else claims
                key = json.dumps(given, sort_keys=True, default=str)
                if key not in bound:
                    bound[key] = bind_spec_filters(policy, given)[0]
                outcome = run_test(test, bound[key], snapshot)
                if outcome.needs_rows:
                    if conn is None:
                        skipped_rows += 1
                    else:
                        outcome = await _with_rows(conn, outcome, bound[key])
                _report(outcome)
                outcomes.append(outcome)
        if skipped_rows:
            print(f"note: {skipped_rows} test(s) list rows:, not compared without a database")
        return outcomes
    finally:
        if conn is not None:
            await conn.close()


async def _connect(args: argparse.Namespace) -> Any:
    if args.database_dsn:
        return await connect_dsn(args.database_dsn)
    if args.config or args.database:
        config = load_ops_config(args.config)
        return await connect_database(database_config(config, args.database))
    return None


def _report(outcome: TestOutcome) -> None:
    source = outcome.test.source
    place = f"{shown_path(source.file)}:{source.line}" if source is not None else "?"
    print(outcome_line(outcome, place))
    for problem in outcome.problems:
        print(f"    {redact(problem)}")


async def _with_rows(conn: Any, outcome: TestOutcome, policy: CompiledPolicy) -> TestOutcome:
    """Run the checked (possibly rewritten) SQL read-only and compare its rows."""
    timeout = policy.statement_timeout_ms or DEFAULT_TIMEOUT_MS
    try:
        async with conn.transaction(readonly=True):
            # The checker resolved unqualified names along the policy's search path: run it there.
            await conn.execute(
                "SELECT set_config('statement_timeout', $1, true), set_config('search_path', $2, true)",
                str(int(timeout)), search_path_value(policy.search_path),
            )
            records = await conn.fetch(outcome.verdict.executable_sql)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        problems = (*outcome.problems, f"executing it failed: {exc}")
        return TestOutcome(outcome.test, outcome.verdict, problems, rows_checked=True)
    return compare_rows(outcome, [tuple(r.values()) for r in records])



if __name__ == "__main__":
    sys.exit(main())
