"""`pgmcp check-sql [--config FILE --database NAME | --policy FILE...] [--format F] PATH... | -`.

The linter ops run in a terminal and in CI. Each PATH is a file, or a directory whose `*.sql`
files below it are read in sorted order; `-` reads stdin. Every statement (split exactly where
psql would split it, `pgmcp.policy.splitter`) is judged on its own by the policy checker.
Without `--policy` or `--config` the shipped baseline policy judges; with `--config` the named
database's policies do, and the live schema is read when the database is reachable (star
expansion, views, functions) unless `--offline`. Exit 0 when every statement is allowed, 1 when
any is denied, 2 for a usage, config or internal error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgmcp.cli.claims_arg import add_claims_argument, with_claims
from pgmcp.cli.formats import FORMATS, Report, StatementResult, render
from pgmcp.cli.ops import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    error_exit,
    policy_and_schema,
)
from pgmcp.errors import PgmcpError, UsageError
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.rules import PGM001, violation
from pgmcp.policy.splitter import split_statements
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.snapshot import SchemaSnapshot

STDIN = "<stdin>"


@dataclass(frozen=True)
class Source:
    """One SQL text to lint and the path it is reported under."""

    path: str
    text: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", metavar="PATH", nargs="+", help="SQL files or directories (*.sql below); - for stdin")
    parser.add_argument("--config", metavar="FILE", help="config file naming the database and its policies")
    parser.add_argument("--database", metavar="NAME", help="with --config: the database whose policies apply")
    parser.add_argument(
        "--policy", metavar="FILE", action="append", default=[],
        help="policy file or shipped name (repeat to merge, as a config's policies list does); default baseline",
    )
    parser.add_argument("--offline", action="store_true", help="with --config: do not read the live schema")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    add_claims_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        sources = read_sources(args.paths)
        policy, snapshot = policy_and_schema(args, baseline_by_default=True)
        policy = with_claims(policy, args.claims)
    except PgmcpError as err:
        return error_exit(err)
    report = judge(sources, policy, snapshot)
    sys.stdout.write(render(report, args.format))
    return EXIT_FAILED if report.denied else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp check-sql", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


def judge(sources: Sequence[Source], policy: CompiledPolicy, snapshot: SchemaSnapshot | None = None) -> Report:
    """Judge every statement of every source; the in-process core of check-sql (and its bench)."""
    results = []
    for source in sources:
        for stmt in split_statements(source.text):
            verdict = check(stmt.text, policy, snapshot)
            if stmt.unterminated is not None and verdict.allowed:
                # psql would never send it as is; whatever the parser made of it, refuse.
                message = f"unterminated {stmt.unterminated} at the end of the input"
                verdict = Verdict(stmt.text, False, (violation(PGM001, message),))
            results.append(StatementResult(source.path, stmt.index, stmt.line, stmt.column, stmt.text, verdict))
    return Report(tuple(results), len(sources), policy.name, snapshot is not None)


def read_sources(paths: Sequence[str]) -> list[Source]:
    """The files named by `paths` (directories: every `*.sql` below, sorted), `-` as stdin."""
    out: list[Source] = []
    for arg in paths:
        if arg == "-":
            out.append(Source(STDIN, sys.stdin.read()))
            continue
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.sql") if p.is_file())
            if not files:
                print(f"warning: no *.sql files below {arg}", file=sys.stderr)
            out.extend(_read(p) for p in files)
        elif path.exists():
            out.append(_read(path))
        else:
            raise UsageError(f"{arg}: no such file or directory")
    return out


def _read(path: Path) -> Source:
    try:
        return Source(str(path), path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from exc


if __name__ == "__main__":
    raise SystemExit(main())
