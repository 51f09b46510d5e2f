"""`pgmcp init [--dsn DSN] [--database-name NAME] [--output-dir DIR] [--force]`: a first setup.

Connects to a database (`--dsn postgresql://user@host:5432/db`, or the usual PG environment
variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE as libpq reads them),
reads its schema as `pgmcp serve` would (`pgmcp.schema.introspect`), and writes:

- `pgmcp.yaml`: the database, the password as `${NAME_DB_PASSWORD}` (never in clear), and a
  pointer to `pgmcp policy grants` for the read-only role pgmcp should log in as;
- `policies/<name>.yaml`: every schema found allowed, every column whose name looks sensitive
  denied with the reason (`pgmcp.schema.sensitive`), tenant-like columns suggested as
  commented row filters, and `tests:` that pin these decisions.

The files pass `pgmcp check-config` (with `--connect` too) and `pgmcp policy test` as written;
they are a draft to review. Existing files are kept unless `--force`, or unless the person at
the terminal says to overwrite them. Exit 0 written, 1 nothing written (declined), 2 usage or
connection error (never a traceback for a bad DSN or an unreachable server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pgmcp.cli.init_files import Connection, config_text, password_variable, policy_text
from pgmcp.cli.ops import EXIT_ERROR, EXIT_FAILED, EXIT_OK, connect_dsn, error_exit
from pgmcp.errors import PgmcpError, UsageError
from pgmcp.observe.redact import register_secret
from pgmcp.schema.introspect import introspect
from pgmcp.schema.sensitive import sensitive_columns, tenant_columns
from pgmcp.schema.snapshot import SchemaSnapshot

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # schemas/config.schema.json: a database name
CONFIG_NAME = "pgmcp.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", metavar="DSN",
        help="postgresql://user[:password]@host:port/dbname (default: the PG environment variables)",
    )
    parser.add_argument(
        "--database-name", metavar="NAME",
        help="the database's name in pgmcp.yaml, the one an assistant asks for (default: its PostgreSQL name)",
    )
    parser.add_argument("--output-dir", metavar="DIR", default=".",
                        help="where to write pgmcp.yaml and policies/ (default: the current directory)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files without asking")


def run(args: argparse.Namespace) -> int:
    try:
        name = _config_name(args.database_name, None) if args.database_name else None  # fail before connecting
        snapshot, dbname, user = asyncio.run(_read(args.dsn))
        name = name or _config_name(None, dbname)
        connection = _connection(args.dsn, user, dbname, name)
        out = Path(args.output_dir)
        config_path, policy_path = out / CONFIG_NAME, out / "policies" / f"{name}.yaml"
        if not _may_write([config_path, policy_path], force=args.force):
            print("init: nothing written", file=sys.stderr)
            return EXIT_FAILED
        stamp = time.strftime("%Y-%m-%d")
        source = _shown(connection, dbname)
        policy_path.parent.mkdir(parents=True, exist_ok=True)
        policy_path.write_text(policy_text(name, snapshot, source, stamp), encoding="utf-8")
        config_path.write_text(
            config_text(name, connection, f"policies/{name}.yaml", str(config_path), stamp), encoding="utf-8"
        )
    except PgmcpError as err:
        return error_exit(err)
    except OSError as err:
        print(f"error: cannot write the files: {err}", file=sys.stderr)
        return EXIT_ERROR
    _report(config_path, policy_path, name, connection, snapshot)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp init", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


async def _read(dsn: str | None) -> tuple[SchemaSnapshot, str, str]:
    """Connect and introspect: the snapshot, the database's name and the role logged in."""
    if dsn is not None:
        try:
            parts = urlsplit(dsn)
            parts.port  # noqa: B018 - parsing the port is what raises for a bad one
        except ValueError as exc:
            raise UsageError(f"--dsn is not a valid URI ({exc})", hint="postgresql://user@host:5432/dbname") from exc
        if parts.scheme not in ("postgresql", "postgres"):
            raise UsageError("--dsn must be a postgresql:// URI", hint="postgresql://user@host:5432/dbname")
    conn = await connect_dsn(dsn, what="--dsn" if dsn else "the database named by the PG environment variables")
    try:
        dbname, user = await conn.fetchrow("SELECT current_database(), current_user")
        snapshot = await introspect(conn, dbname)
    finally:
        await conn.close()
    return snapshot, str(dbname), str(user)


def _connection(dsn: str | None, user: str, dbname: str, name: str) -> Connection:
    """How the config reaches the database: the DSN without its password, or the PG
    environment's settings; a `${NAME_DB_PASSWORD}` when a password was used."""
    if dsn is not None:
        parts = urlsplit(dsn)
        query = parse_qsl(parts.query, keep_blank_values=True)
        password = parts.password or dict(query).get("password") or os.environ.get("PGPASSWORD")
        userinfo, at, hostport = parts.netloc.rpartition("@")
        login = userinfo.partition(":")[0]
        netloc = f"{login}@{hostport}" if at and login else hostport
        kept = urlencode([(k, v) for k, v in query if k != "password"])
        clean = urlunsplit((parts.scheme, netloc, parts.path, kept, parts.fragment))
        if password:
            register_secret(unquote(password))
        return Connection(dsn=clean, password_variable=password_variable(name) if password else None)
    env = os.environ
    port = env.get("PGPORT")
    return Connection(
        host=env.get("PGHOST") or "localhost",
        port=int(port) if port and port.isdigit() else None,
        user=env.get("PGUSER") or user,
        dbname=env.get("PGDATABASE") or dbname,
        sslmode=env.get("PGSSLMODE") or None,
        password_variable=password_variable(name) if env.get("PGPASSWORD") else None,
    )


def _config_name(given: str | None, dbname: str | None) -> str:
    if given is not None:
        if not NAME.match(given):
            raise UsageError(f"--database-name {given!r} is not a valid name",
                             hint="letters, digits, _ and -, starting with a letter or _")
        return given
    name = re.sub(r"[^A-Za-z0-9_-]", "_", dbname or "")
    return name if NAME.match(name) else f"db_{name}"


def _may_write(paths: list[Path], *, force: bool) -> bool:
    """True when none of `paths` exists, with --force, or when the person at the terminal agrees."""
    existing = [p for p in paths if p.exists()]
    if not existing or force:
        return True
    names = " and ".join(str(p) for p in existing)
    if not sys.stdin.isatty():
        raise UsageError(f"{names} already exist(s)", hint="pass --force to overwrite, or --output-dir elsewhere")
    try:
        answer = input(f"{names} already exist(s). Overwrite? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _shown(conn: Connection, dbname: str) -> str:
    if conn.dsn:
        return conn.dsn
    user = f"{conn.user}@" if conn.user else ""
    port = f":{conn.port}" if conn.port else ""
    return f"postgresql://{user}{conn.host or ''}{port}/{conn.dbname or dbname}"


def _report(config_path: Path, policy_path: Path, name: str, conn: Connection, snapshot: SchemaSnapshot) -> None:
    hidden, tenants = sensitive_columns(snapshot), tenant_columns(snapshot)
    print(f"wrote {config_path} and {policy_path}: {len(snapshot.relations)} relation(s), "
          f"{len(hidden)} column(s) hidden by name, {len(tenants)} row filter(s) suggested (commented)")
    print("next:")
    if conn.password_variable:
        print(f"  export {conn.password_variable}=...   # the password, for pgmcp only; never written to a file")
    print(f"  review {policy_path}: hide what else must not be read, uncomment the row filters you need")
    print(f"  pgmcp policy grants --config {config_path} --database {name}   # a read-only role for pgmcp")
    print(f"  pgmcp policy test {policy_path}")
    print(f"  pgmcp check-config --config {config_path} --connect")
    print(f"  then add `pgmcp serve --config {config_path.resolve()}` to your MCP host")
