"""The role SQL `pgmcp init` writes (`pgmcp-role.sql`): the least-privilege role pgmcp logs in as.

It is the output of `pgmcp policy grants --role ROLE --login` for the config and policy that
`init` has just drafted (the same code, `pgmcp.grants.build.generate_grants`, reading the
catalogs through init's own connection), between a header that says how to apply it and a psql
part that sets the role's password from a psql variable. The password itself is never in the
file: `psql -v pw="$SHOP_DB_PASSWORD" -f pgmcp-role.sql ...` passes the value pgmcp will log in
with; without `pw` the file says to use psql's `\\password`, which sends only a hash.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgmcp.config.loader import load_config
from pgmcp.db.session import quote_ident
from pgmcp.errors import UsageError
from pgmcp.grants.build import generate_grants
from pgmcp.policy.effective import effective_policy

ROLE_SQL_NAME = "pgmcp-role.sql"
DEFAULT_ROLE = "pgmcp_ro"
# A role name PostgreSQL needs no quotes for (NAMEDATALEN 64: 63 bytes), so that it reads the
# same in the config's DSN, in SQL and in the psql commands the file and the report print.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class RoleSql:
    text: str
    problems: tuple[str, ...]  # policy rules the database cannot express (as `policy grants` says them)
    notes: tuple[str, ...]


def check_role_name(role: str) -> str:
    if not ROLE_NAME.match(role):
        raise UsageError(f"--role {role!r} is not a plain role name",
                         hint="lowercase letters, digits and _, starting with a letter or _, at most 63")
    return role


def apply_command(role_sql: str, variable: str, admin: str | None) -> str:
    """The psql command that applies the file as an admin (`admin`: its DSN, None: PG* variables)."""
    target = f" '{admin}'" if admin else ""
    return f'psql -v ON_ERROR_STOP=1 -v pw="${variable}" -f {role_sql}{target}'


def regrant_apply(admin: str | None) -> str:
    """The psql command that applies `pgmcp policy grants` output (`grants.sql`) as the admin."""
    return "psql -v ON_ERROR_STOP=1 -f grants.sql" + (f" '{admin}'" if admin else "")


async def role_sql(
    conn: Any, *, name: str, role: str, config_text: str, policy_text: str, policy_ref: str,
    apply: str, regrant: str, stamp: str,
) -> RoleSql:
    """The file's text for `role`, from the drafted config and policy (loaded as pgmcp would,
    from a scratch folder, without secrets) and the catalogs `conn` reads."""
    with tempfile.TemporaryDirectory(prefix="pgmcp-init-") as scratch:
        base = Path(scratch)
        (base / policy_ref).parent.mkdir(parents=True, exist_ok=True)
        (base / policy_ref).write_text(policy_text, encoding="utf-8")
        (base / "pgmcp.yaml").write_text(config_text, encoding="utf-8")
        config = load_config(base / "pgmcp.yaml", need_secrets=False)
        effective = effective_policy(config, config.databases[0])
        out = await generate_grants(conn, effective, name, role, login=True, base_dir=base)
    header = [
        f"-- The role pgmcp logs in as, written by `pgmcp init` on {stamp} for {policy_ref} as drafted.",
        "-- Apply it as an admin (a superuser, or the tables' owner with CREATEROLE), with the password",
        "-- pgmcp will log in with in the variable the config names:",
        f"--   {apply}",
        "-- After a change of the policy or the schema, print the grants again (as pgmcp logs in) and apply them:",
        f"--   {regrant}",
        "",
    ]
    return RoleSql("\n".join(header) + out.sql + _password_sql(role), out.problems, out.notes)


def _password_sql(role: str) -> str:
    ident = quote_ident(role)
    return "\n".join([
        "",
        f"-- The password of {role} is never written here. psql sets it from its variable pw, given as",
        f"-- -v pw=\"$VARIABLE\" (see the top); without it, set one in psql with \\password {role} (which",
        "-- sends only a hash: ALTER ROLE ... PASSWORD reaches the server log when log_statement is ddl or all).",
        "\\if :{?pw}",
        f"ALTER ROLE {ident} PASSWORD :'pw';",
        "\\else",
        f"\\echo 'No password set for {role} (no -v pw=...): set one with \\\\password {role} in psql.'",
        "\\endif",
        "",
    ])
