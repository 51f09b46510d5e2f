"""`pgmcp ask [--config FILE] [--database NAME] [--sql-only] "question"`: the pipeline, from a terminal.

Builds the same `Runtime` the MCP server uses, asks the configured model, and prints the SQL
it wrote, the policy's verdict (with the rewrites it made) and the rows as a table. Useful to
try a policy with a model before an MCP host is involved. Exit 0 with an answer; 1 when no
acceptable SQL came out (every attempt refused or unusable) or the query failed; 2 for usage
and config errors (including a config whose `llm.provider` is `client`: there is no MCP host
here to lend its model).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

from pgmcp.cli.table import render_table
from pgmcp.config.loader import find_config_path, load_config
from pgmcp.config.model import Config
from pgmcp.errors import (
    ConfigError,
    DatabaseNotFound,
    DocumentError,
    GenerationFailed,
    LLMUnavailable,
    PgmcpError,
    UsageError,
)
from pgmcp.observe.audit import CLI, audit_scope
from pgmcp.observe.logs import request_scope, setup_logging
from pgmcp.observe.redact import redact
from pgmcp.policy.verdict import Verdict

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_SHOWN_ROWS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="the question, in plain language")
    parser.add_argument("--config", metavar="FILE", help="config file (default: $PGMCP_CONFIG, ./pgmcp.yaml)")
    parser.add_argument(
        "--database", metavar="NAME", help="which configured database to ask (default: the only one)"
    )
    parser.add_argument("--sql-only", action="store_true", help="print the checked SQL without running it")
    parser.add_argument("--verbose", "-v", action="store_true", help="show pgmcp's log lines on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(find_config_path(args.config))
    except PgmcpError as exc:
        return _error(exc, EXIT_USAGE)
    # Quiet unless --verbose, but keep the format and the audit file: asking is a decision too.
    setup_logging(config.logging if args.verbose else dataclasses.replace(config.logging, level="WARNING"))
    if config.llm.provider == "client":
        return _error(UsageError(
            "pgmcp ask needs a model of its own: llm.provider is 'client' (the MCP host's model), "
            "and there is no MCP host here",
            hint="set llm.provider to openai or anthropic in the config (with its API key)",
        ), EXIT_USAGE)
    try:
        return asyncio.run(_ask(config, args))
    except KeyboardInterrupt:
        return 130


async def _ask(config: Config, args: argparse.Namespace) -> int:
    from pgmcp.service.runtime import Runtime

    try:
        runtime = Runtime(config)
    except (DocumentError, LLMUnavailable, UsageError) as exc:  # policies, missing API key
        return _error(exc, EXIT_USAGE)
    try:
        await runtime.start()
        # One request id for the log lines and the audit line, as for an MCP tool call.
        with request_scope(), audit_scope(CLI, "ask", args.question) as scope:
            try:
                answer = await runtime.pipeline.query(
                    args.question, args.database, "sql" if args.sql_only else "result"
                )
            except PgmcpError as exc:
                scope.error_code = exc.code
                raise
    except GenerationFailed as exc:
        print(f"refused: {redact(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, DatabaseNotFound, UsageError) as exc:
        return _error(exc, EXIT_USAGE)
    except PgmcpError as exc:
        return _error(exc, EXIT_FAILED)
    finally:
        await runtime.close()
    print(f"Database: {answer.database}")
    print("SQL:")
    print(_indent(answer.sql))
    print(f"Verdict: {verdict_line(answer.verdict)}")
    if answer.verdict.executable_sql.strip() != answer.sql.strip():
        print("Runs as:")
        print(_indent(answer.verdict.executable_sql))
    if answer.result is None:
        return EXIT_OK
    result = answer.result
    print()
    print(render_table([c.name for c in result.columns], result.rows, limit=MAX_SHOWN_ROWS))
    notes = [f"{result.elapsed_ms:.0f} ms", f"{len(answer.attempts)} attempt(s)"]
    if result.truncated:
        notes.append(f"truncated: {result.truncated_reason}")
    print("(" + "; ".join(notes) + ")")
    return EXIT_OK


def verdict_line(verdict: Verdict) -> str:
    """`allowed` or `refused`, then the rule codes that fired and the rewrites made."""
    word = "allowed" if verdict.allowed else "refused"
    notes = [f"{v.rule} {v.name}: {v.message}" for v in verdict.violations]
    notes += [f"rewritten ({t.rule}): {t.detail}" for t in verdict.trace if t.effect == "rewrite"]
    return word + "".join(f"\n  - {n}" for n in dict.fromkeys(notes))


def _indent(sql: str) -> str:
    return "\n".join("  " + line for line in sql.strip().splitlines())


def _error(exc: PgmcpError, code: int) -> int:
    print(f"error: {redact(str(exc))}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp ask", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
