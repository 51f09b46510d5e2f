"""What the ops commands (`check-config`, `policy test`, `explain-policy`, `check-sql`) share.

Showing where a rule lives (`policies/demo.yaml:15 tables.public.*`, paths relative to the
working directory when they are below it), loading the config with its secrets registered,
the policy and optional live schema that `--config/--database/--policy/--offline` select,
and opening one plain read-only connection to a configured database (the ops commands run
once and exit, so they need no pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from pgmcp.config.loader import find_config_path, load_config
from pgmcp.config.model import Config, DatabaseConfig
from pgmcp.db.session import quote_ident
from pgmcp.documents.resources import policies_dir
from pgmcp.errors import DatabaseError, DatabaseUnavailable, PgmcpError, SourceLocation, UsageError
from pgmcp.observe.redact import redact, register_secret, register_secrets_in
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.effective import effective_policy, standalone_policy
from pgmcp.schema.snapshot import SchemaSnapshot

CONNECT_TIMEOUT = 10.0
EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def shown_path(file: str) -> str:
    """`file` relative to the working directory when it lies below it, `<shipped>/baseline.yaml`
    for a shipped policy elsewhere, else as given."""
    path = Path(file).resolve()
    if path.is_relative_to(Path.cwd().resolve()):
        return str(path.relative_to(Path.cwd().resolve()))
    if path.parent == policies_dir().resolve():
        return f"<shipped>/{path.name}"
    return file


def where(source: SourceLocation | None) -> str:
    """`policies/demo.yaml:15 tables.public.*` (empty for the engine's built-in rules)."""
    if source is None:
        return ""
    line = f":{source.line}" if source.line is not None else ""
    key = f" {source.key_path}" if source.key_path else ""
    return f"{shown_path(source.file)}{line}{key}"


def error_exit(err: PgmcpError) -> int:
    """Print a pgmcp error (file, line, key and hint for documents) and return exit code 2."""
    print(f"error: {redact(str(err))}", file=sys.stderr)
    return EXIT_ERROR


def load_ops_config(path: str | None, *, need_secrets: bool = True) -> Config:
    """The config named by `--config` (or `$PGMCP_CONFIG`, or ./pgmcp.yaml), secrets registered.

    A command that never connects passes `need_secrets=False`: unset password and API-key
    variables are then no error (see `pgmcp.config.loader.load_config`).
    """
    config = load_config(find_config_path(path), need_secrets=need_secrets)
    register_secrets_in(config)
    return config


def database_config(config: Config, name: str | None) -> DatabaseConfig:
    """The database `name` of `config`; the only one when `name` is None and there is one."""
    names = ", ".join(db.name for db in config.databases)
    if name is None:
        if len(config.databases) == 1:
            return config.databases[0]
        raise UsageError(f"the config has several databases ({names}); pick one with --database")
    found = config.database(name)
    if found is None:
        raise UsageError(f"no database {name!r} in the config", hint=f"configured databases: {names}")
    return found


def policy_and_schema(
    args: argparse.Namespace, *, baseline_by_default: bool, notice: str = "note", schema_errors_fatal: bool = False
) -> tuple[CompiledPolicy, SchemaSnapshot | None]:
    """The policy and live schema selected by `--policy` or `--config/--database`, and `--offline`.

    `--policy` refs give a policy and no schema. Otherwise the config (`--config`, else
    `$PGMCP_CONFIG` or ./pgmcp.yaml) names the database whose policy applies, and its live
    schema is read unless `--offline` (see `live_schema` for `notice` and `schema_errors_fatal`).
    With `baseline_by_default` (check-sql) no `--config` means the `--policy` refs or, without
    any, the shipped baseline, and `--database` needs `--config`.
    """
    if args.policy and (args.config or args.database):
        raise UsageError("give either --policy or --config/--database, not both")
    if baseline_by_default:
        if args.database and not args.config:
            raise UsageError("--database needs --config (the file that defines the database)")
        if not args.config:
            return standalone_policy(args.policy).policy, None  # no refs: the shipped baseline
    elif args.policy:
        return standalone_policy(args.policy).policy, None
    config = load_ops_config(args.config, need_secrets=not args.offline)
    db = database_config(config, args.database)
    policy = effective_policy(config, db).policy
    if args.offline:
        return policy, None
    return policy, asyncio.run(live_schema(db, notice=notice, schema_errors_fatal=schema_errors_fatal))


async def live_schema(
    db: DatabaseConfig, *, notice: str = "note", schema_errors_fatal: bool = False
) -> SchemaSnapshot | None:
    """The live schema of `db`, or None (with `<notice>: judging without the live schema` on
    stderr) when it cannot be read; with `schema_errors_fatal` only a failed connection falls
    back, and an error reading the catalogs is raised."""
    from pgmcp.schema.introspect import introspect  # the catalog queries are only needed here

    try:
        conn = await connect_database(db)
    except DatabaseError as err:
        print(f"{notice}: judging without the live schema: {redact(err.message)}", file=sys.stderr)
        return None
    try:
        return await introspect(conn, db.name)
    except DatabaseError as err:
        if schema_errors_fatal:
            raise
        print(f"{notice}: judging without the live schema: {redact(err.message)}", file=sys.stderr)
        return None
    finally:
        await conn.close()


def shown_dsn(db: DatabaseConfig) -> str:
    """Where `db` lives, without its password (config loading already split it out)."""
    if db.dsn:
        return redact(db.dsn)
    user = f"{db.user}@" if db.user else ""
    port = f":{db.port}" if db.port else ""
    return redact(f"postgresql://{user}{db.host or ''}{port}/{db.dbname or ''}")


async def connect_database(db: DatabaseConfig) -> Any:
    """An asyncpg connection to `db` as its configured role (SET ROLE applied).

    Raises `DatabaseUnavailable` with the reason (never the password) when it cannot connect.
    """
    try:
        conn = await asyncpg.connect(
            dsn=db.dsn, host=db.host, port=db.port, user=db.user, database=db.dbname,
            password=db.password.value or None, ssl=db.sslmode,
            timeout=CONNECT_TIMEOUT, statement_cache_size=0,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to database {db.name!r} at {shown_dsn(db)}: "
            f"{type(exc).__name__}: {redact(str(exc))}",
            hint="check that the server is running and the connection settings are right",
        ) from exc
    if db.role:
        try:
            await conn.execute(f"SET ROLE {quote_ident(db.role)}")
        except asyncpg.PostgresError as exc:
            await conn.close()
            raise DatabaseUnavailable(
                f"database {db.name!r}: SET ROLE {db.role} failed: {exc}",
                hint="grant the role to the login user, or fix `role:` in the config",
            ) from exc
    return conn


async def connect_dsn(dsn: str | None, *, what: str = "--database-dsn") -> Any:
    """An asyncpg connection to a DSN given on the command line (never echoed back); with no
    DSN, to what the PG environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE,
    PGPASSWORD...) say, as libpq would. `what` names the source in the error."""
    with contextlib.suppress(ValueError):
        if dsn and (password := urlsplit(dsn).password):
            register_secret(unquote(password))
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, statement_cache_size=0)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        hint = "check that the server is running and the DSN is right" if dsn else (
            "check that the server is running and PGHOST, PGPORT, PGUSER, PGDATABASE (and PGPASSWORD) are right"
        )
        raise DatabaseUnavailable(
            f"cannot connect to {what}: {type(exc).__name__}: {redact(str(exc))}", hint=hint
        ) from exc
