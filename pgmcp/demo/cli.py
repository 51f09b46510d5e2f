"""`pgmcp demo [--dsn DSN] [--config FILE] [--tour] [--keep-running]`: the sample shop, served.

Starts a throwaway PostgreSQL (or uses the server at `--dsn`), loads the sample shop into a
database `shop` and serves it under policies/demo.yaml as the read-only role `pgmcp_demo`.
In a terminal (or with `--tour`) it runs the guided tour and exits; started by an MCP host
(stdin is not a terminal) it serves MCP on stdio, with nothing but the protocol on stdout.
`--keep-running` keeps the database up until SIGINT or SIGTERM: after the tour in a
terminal; elsewhere (a script, `&` in a shell) at once, instead of serving MCP on stdio.
The throwaway PostgreSQL is removed on every way out: normal exit, an error, Ctrl-C (SIGINT),
SIGTERM and SIGHUP (see `pgmcp.demo.signals`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from pgmcp.config.model import Config, LoggingConfig
from pgmcp.demo.environment import DEMO_DATABASE, DemoEnvironment, llm_config, with_database
from pgmcp.demo.signals import Stopped, run_async, termination_signals, wait_for_signal
from pgmcp.errors import PgmcpError, PostgresNotFound
from pgmcp.observe.logs import setup_logging
from pgmcp.observe.redact import redact, register_secret

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGINT = 128 + signal.SIGINT
USAGE_CODES = ("invalid_config", "invalid_document", "invalid_request", "resource_not_found")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", metavar="DSN",
        help="use this PostgreSQL server (a user that may CREATE DATABASE and CREATE ROLE) instead "
             "of a throwaway one; the database 'shop' is created there and kept",
    )
    parser.add_argument(
        "--config", metavar="FILE", type=Path,
        help="take the llm: settings from this config file (default: OpenAI or Anthropic when "
             "OPENAI_API_KEY or ANTHROPIC_API_KEY is set, else the MCP host's model)",
    )
    parser.add_argument(
        "--tour", action="store_true", help="run the guided tour even when stdin is not a terminal"
    )
    parser.add_argument(
        "--keep-running", action="store_true",
        help="keep the database up until Ctrl-C or SIGTERM, to connect with psql: after the tour in a "
             "terminal (or with --tour), else at once, without serving MCP on stdio",
    )


def run(args: argparse.Namespace) -> int:
    tour = bool(args.tour or sys.stdin.isatty())
    # The tour's own output is the point; server logs would only clutter it. Serving, the
    # host shows stderr in its MCP log, where progress lines are useful.
    setup_logging(LoggingConfig(level="WARNING" if tour else "INFO"))
    if args.dsn:
        register_secret_in_dsn(args.dsn)
    env = DemoEnvironment(args.dsn)
    try:
        with termination_signals():
            try:
                config = env.start(llm_config(args.config))
                if tour:
                    return run_tour(config, env, keep_running=args.keep_running)
                if args.keep_running:
                    return keep_up(env, terminal=False)
                logger.info("pgmcp demo: serving MCP on stdio (database {}, policy demo)", DEMO_DATABASE)
                run_async(serve_stdio(config))
                return EXIT_OK
            finally:
                env.cleanup()
    except PostgresNotFound as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        print(f"To run the demo, {exc.hint}.", file=sys.stderr)
        return EXIT_USAGE
    except PgmcpError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE if exc.code in USAGE_CODES else EXIT_FAILED
    except KeyboardInterrupt:
        print(f"pgmcp demo: interrupted; {_what_remains(args.dsn)}", file=sys.stderr)
        return EXIT_SIGINT
    except Stopped as stop:
        print(f"pgmcp demo: stopped by signal {stop.signum}; {_what_remains(args.dsn)}", file=sys.stderr)
        return 128 + stop.signum


def _what_remains(dsn: str | None) -> str:
    # Only the throwaway cluster is removed; a --dsn server keeps the database (reused next time).
    if dsn is None:
        return "the demo database was removed"
    return f"the database '{DEMO_DATABASE}' stays on the --dsn server"


def register_secret_in_dsn(dsn: str) -> None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(dsn).password
    except ValueError:
        return
    if password:
        register_secret(unquote(password))


async def serve_stdio(config: Config) -> None:
    from pgmcp.mcp.server import build_server, run_stdio

    await run_stdio(build_server(config))


def run_tour(config: Config, env: DemoEnvironment, *, keep_running: bool) -> int:
    from pgmcp.demo.tour import Tour

    server = env.server
    if server is not None and server.cluster_dir is not None:
        where = f"a throwaway cluster in {server.cluster_dir} (removed on exit)"
    else:
        where = "the server given with --dsn (the database 'shop' stays there)"
    run_async(Tour(config, sys.stdout, where).run())
    if keep_running:
        return keep_up(env, terminal=sys.stdin.isatty())
    return EXIT_OK


def keep_up(env: DemoEnvironment, *, terminal: bool) -> int:
    """Print how to reach the database and how to stop, then wait until a signal unwinds us
    (SIGINT as KeyboardInterrupt, SIGTERM and SIGHUP as `Stopped`: `pgmcp.demo.signals`)."""
    server = env.server
    if server is None:
        return EXIT_OK
    psql = f"psql '{with_database(redact(server.admin_dsn), DEMO_DATABASE)}'"
    # Outside a terminal Ctrl-C may not reach us (a job started with `&` ignores SIGINT): SIGTERM does.
    kill = f"`kill {os.getpid()}` (SIGTERM) or SIGINT"
    if server.cluster_dir is not None:
        print(f"The throwaway PostgreSQL in {server.cluster_dir} stays up: {psql}")
        print("Press Ctrl-C to stop it and remove it." if terminal else f"{kill} stops it and removes it.", flush=True)
    else:
        print(f"The database stays up: {psql}")
        print("Press Ctrl-C to exit" if terminal else f"{kill} ends pgmcp demo", "(the database stays on that server).",
              flush=True)
    wait_for_signal()  # until a signal unwinds us
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
