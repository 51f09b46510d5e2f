"""`pgmcp init [--dsn DSN] [--database-name NAME] [--role ROLE] [--output-dir DIR] [--force]`.

A first setup. Connects to a database as an admin (`--dsn postgresql://user@host:5432/db`, or
the usual PG environment variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE as
libpq reads them), reads its schema as `pgmcp serve` would (`pgmcp.schema.introspect`), and
writes:

- `pgmcp.yaml`: the database, reached as ROLE (default `pgmcp_ro`), a least-privilege role of
  pgmcp's own, its password as `${NAME_DB_PASSWORD}` (never in clear), `refuse_unsafe_role`;
- `policies/<name>.yaml`: every schema found allowed, every column whose name looks sensitive
  denied with the reason (`pgmcp.schema.sensitive`), tenant-like columns suggested as
  commented row filters, and `tests:` that pin these decisions;
- `pgmcp-role.sql`: the SQL that creates ROLE with exactly the privileges that policy needs,
  `pgmcp policy grants --role ROLE --login` (`pgmcp.cli.init_role`), to apply with psql as an
  admin; the password comes from a psql variable, never from the file.

The files pass `pgmcp check-config` and `pgmcp policy test` as written, and `check-config
--connect --strict` once the role SQL is applied; they are a draft to review. Existing files are
kept unless `--force`, or unless the person at the terminal says to overwrite them. Exit 0
written, 1 nothing written (declined), 2 usage or connection error (never a traceback for a bad
DSN or an unreachable server), or a ROLE that privileges would not bind (a superuser, an owner).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pgmcp.cli.init_files import Connection, config_text, password_variable, policy_text
from pgmcp.cli.init_role import (
    DEFAULT_ROLE,
    ROLE_SQL_NAME,
    RoleSql,
    apply_command,
    check_role_name,
    regrant_apply,
    role_sql,
)
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
        help="postgresql://user[:password]@host:port/dbname of an admin (default: the PG environment variables)",
    )
    parser.add_argument(
        "--database-name", metavar="NAME",
        help="the database's name in pgmcp.yaml, the one an assistant asks for (default: its PostgreSQL name)",
    )
    parser.add_argument(
        "--role", metavar="ROLE", default=DEFAULT_ROLE,
        help=f"the read-only role pgmcp logs in as, created by {ROLE_SQL_NAME} (default: {DEFAULT_ROLE})",
    )
    parser.add_argument(
        "--output-dir", metavar="DIR", default=".",
        help=f"where to write pgmcp.yaml, policies/ and {ROLE_SQL_NAME} (default: the current directory)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files without asking")


@dataclass(frozen=True)
class Draft:
    """Everything init writes, made before anything is written."""

    name: str
    connection: Connection  # how pgmcp reaches the database: as the role
    admin: str | None  # the admin's DSN without password; None: the PG environment variables
    snapshot: SchemaSnapshot
    config: str
    policy: str
    role: RoleSql


def run(args: argparse.Namespace) -> int:
    out = Path(args.output_dir)
    try:
        given = _config_name(args.database_name, None) if args.database_name else None  # fail before connecting
        role = check_role_name(args.role)
        draft = asyncio.run(_draft(args.dsn, given, role, out))
        paths = _paths(out, draft.name)
        if not _may_write(list(paths), force=args.force):
            print("init: nothing written", file=sys.stderr)
            return EXIT_FAILED
        config_path, policy_path, role_path = paths
        policy_path.parent.mkdir(parents=True, exist_ok=True)
        policy_path.write_text(draft.policy, encoding="utf-8")
        config_path.write_text(draft.config, encoding="utf-8")
        role_path.write_text(draft.role.text, encoding="utf-8")
    except PgmcpError as err:
        return error_exit(err)
    except OSError as err:
        print(f"error: cannot write the files: {err}", file=sys.stderr)
        return EXIT_ERROR
    _report(paths, draft, role)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp init", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    return out / CONFIG_NAME, out / "policies" / f"{name}.yaml", out / ROLE_SQL_NAME


async def _draft(dsn: str | None, given: str | None, role: str, out: Path) -> Draft:
    """Connect, introspect and write every file's text (nothing on disk yet)."""
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
        snapshot = await introspect(conn, str(dbname))
        name = given or _config_name(None, str(dbname))
        connection, admin = _connection(dsn, role, str(user), str(dbname), name)
        stamp = time.strftime("%Y-%m-%d")
        config_path, _, role_path = _paths(out, name)
        policy_ref = f"policies/{name}.yaml"
        config = config_text(name, connection, policy_ref, ROLE_SQL_NAME, role, stamp)
        policy = policy_text(name, snapshot, admin or _shown(connection, str(dbname)), stamp)
        variable = connection.password_variable or password_variable(name)
        sql = await role_sql(
            conn, name=name, role=role, config_text=config, policy_text=policy, policy_ref=policy_ref,
            apply=apply_command(str(role_path), variable, admin),
            regrant=f"pgmcp policy grants --config {config_path} --database {name} > grants.sql; "
                    f"{regrant_apply(admin)}", stamp=stamp,
        )
    finally:
        await conn.close()
    return Draft(name, connection, admin, snapshot, config, policy, sql)


def _connection(dsn: str | None, role: str, user: str, dbname: str, name: str) -> tuple[Connection, str | None]:
    """How the config reaches the database, as `role` with `${NAME_DB_PASSWORD}`, and the admin's
    DSN without its password (None when init read the PG environment variables)."""
    variable = password_variable(name)
    if os.environ.get("PGPASSWORD"):
        register_secret(os.environ["PGPASSWORD"])  # the admin's: never echoed
    if dsn is not None:
        parts = urlsplit(dsn)
        query = parse_qsl(parts.query, keep_blank_values=True)
        password = parts.password or dict(query).get("password")
        if password:
            register_secret(unquote(password))
        userinfo, _, hostport = parts.netloc.rpartition("@")
        login = userinfo.partition(":")[0]
        kept = urlencode([(k, v) for k, v in query if k != "password"])

        def with_user(who: str) -> str:
            netloc = f"{who}@{hostport}" if who else hostport
            return urlunsplit((parts.scheme, netloc, parts.path, kept, parts.fragment))

        return Connection(dsn=with_user(quote(role, safe="")), password_variable=variable), with_user(login)
    env = os.environ
    port = env.get("PGPORT")
    return Connection(
        host=env.get("PGHOST") or "localhost",
        port=int(port) if port and port.isdigit() else None,
        user=role,
        dbname=env.get("PGDATABASE") or dbname,
        sslmode=env.get("PGSSLMODE") or None,
        password_variable=variable,
    ), None


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
    """Where the database is, for the policy's header (PG environment variables: as read)."""
    user = f"{os.environ.get('PGUSER')}@" if os.environ.get("PGUSER") else ""
    port = f":{conn.port}" if conn.port else ""
    return f"postgresql://{user}{conn.host or ''}{port}/{conn.dbname or dbname}"


def _report(paths: tuple[Path, Path, Path], draft: Draft, role: str) -> None:
    config_path, policy_path, role_path = paths
    hidden, tenants = sensitive_columns(draft.snapshot), tenant_columns(draft.snapshot)
    variable = draft.connection.password_variable or password_variable(draft.name)
    print(f"wrote {config_path}, {policy_path} and {role_path}: {len(draft.snapshot.relations)} relation(s), "
          f"{len(hidden)} column(s) hidden by name, {len(tenants)} row filter(s) suggested (commented)")
    for note in draft.role.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in draft.role.problems:
        print(f"warning: {role_path}: {problem}", file=sys.stderr)
    print("next:")
    print(f"  export {variable}='...'   # choose {role}'s password: pgmcp reads it from here, never from a file")
    print(f"  {apply_command(str(role_path), variable, draft.admin)}"
          f"   # as an admin: creates {role}, read-only, with the policy's privileges")
    print(f"  pgmcp policy test {policy_path}")
    print(f"  pgmcp check-config --config {config_path} --connect --strict")
    print(f"  review {policy_path}: hide what else must not be read, uncomment the row filters you need;")
    print(f"    after a change: pgmcp policy grants --config {config_path} --database {draft.name} > grants.sql")
    print(f"    and, as the admin: {regrant_apply(draft.admin)}")
    print(f"  then add `pgmcp serve --config {config_path.resolve()}` to your MCP host, with {variable} in its"
          " environment")
