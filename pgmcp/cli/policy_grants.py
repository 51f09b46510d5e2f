"""`pgmcp policy grants --config FILE --database NAME [--role ROLE] [--login] [--revoke-public]`.

Prints to stdout the SQL that makes the database itself enforce the database's effective
policy for ROLE: privileges, column privileges and row-level security (`pgmcp.grants`). ROLE
defaults to the config's `role:` for that database (what pgmcp reads as after SET ROLE), else
the user its connection logs in as. The catalogs are read through the database's own
connection, or `--admin-dsn` (for example while the role does not exist yet; the config's
password variables are then not needed). A superuser or the owner of the relations is refused:
privileges do not bind it (use a role of its own, `--role pgmcp_ro --login`). A policy rule
the database cannot express is reported on stderr, naming the rule, and its relation is left
ungranted while the rest is generated. Exit 0, 1 when some rule could not be expressed, 2 for
a usage, config or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pgmcp.cli.ops import (
    EXIT_FAILED,
    EXIT_OK,
    connect_database,
    connect_dsn,
    database_config,
    error_exit,
    load_ops_config,
)
from pgmcp.config.model import DatabaseConfig
from pgmcp.errors import PgmcpError, UsageError
from pgmcp.grants.build import generate_grants
from pgmcp.policy.effective import EffectivePolicy, effective_policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (default: $PGMCP_CONFIG, ./pgmcp.yaml)")
    parser.add_argument("--database", metavar="NAME", help="the configured database (needed when there are several)")
    parser.add_argument("--role", metavar="ROLE", help="the role to grant to (default: the database's role: or user)")
    parser.add_argument(
        "--login", action="store_true", help="also CREATE ROLE ... LOGIN when it is missing (no password)"
    )
    parser.add_argument(
        "--revoke-public", action="store_true",
        help="also revoke EXECUTE from PUBLIC on built-in dangerous functions (changes every role)",
    )
    parser.add_argument("--admin-dsn", metavar="DSN", help="read the catalogs through this connection instead")


def run(args: argparse.Namespace) -> int:
    try:
        # Through --admin-dsn the config's own connection is never opened: its secrets are not needed.
        config = load_ops_config(args.config, need_secrets=not args.admin_dsn)
        db = database_config(config, args.database)
        effective = effective_policy(config, db)
        text, problems, notes = asyncio.run(_generate(args, db, effective, config.path))
    except PgmcpError as err:
        return error_exit(err)
    sys.stdout.write(text)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"policy grants: {len(problems)} rule(s) the database cannot express; the rest is generated",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp policy grants", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def default_role(db: DatabaseConfig) -> str | None:
    """The role pgmcp reads as: `role:` (SET ROLE), else the login user of the connection."""
    if db.role:
        return db.role
    if db.user:
        return db.user
    if db.dsn and (user := urlsplit(db.dsn).username):
        return unquote(user)
    return None


async def _generate(
    args: argparse.Namespace, db: DatabaseConfig, effective: EffectivePolicy, config_path: Path | None
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    conn = await (connect_dsn(args.admin_dsn) if args.admin_dsn else _connect(db))
    try:
        role = args.role or default_role(db) or await conn.fetchval("SELECT session_user")
        out = await generate_grants(conn, effective, db.name, role, login=args.login, revoke_public=args.revoke_public,
                                    base_dir=config_path.parent if config_path else None)
    finally:
        await conn.close()
    return out.sql, out.problems, out.notes


async def _connect(db: DatabaseConfig) -> Any:
    try:
        return await connect_database(db)
    except PgmcpError as err:
        raise UsageError(
            err.message, hint="read the catalogs through another role with --admin-dsn (e.g. when the role "
                              "does not exist yet)"
        ) from err
