"""The role parts of `pgmcp policy grants`: creating it, its attributes and memberships, its
session settings, and the opt-in revoke of built-in dangerous functions from PUBLIC.

Every statement is idempotent: a role is created only when missing (a DO block), attributes
and memberships are changed only where the catalogs show them, and `ALTER ROLE ... IN
DATABASE ... SET` overwrites its own earlier value.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pgmcp.db.session import quote_ident, sql_literal
from pgmcp.grants.catalog import RoleFacts
from pgmcp.policy.effective import EffectiveLimits
from pgmcp.policy.functions import function_sets

# The built-in functions PostgreSQL lets every role run that have side effects a read-only
# transaction does not stop, or that run SQL hidden in a string (DANGEROUS_FUNCTIONS.md groups
# A, C, D, E). Each is also in pgmcp's dangerous set (a test checks it). Left out on purpose,
# although dangerous to pgmcp: set_config, current_setting and version (every driver and
# pg_dump use them), pg_export_snapshot (parallel pg_dump) and functions that check
# privileges themselves (replication, binary_upgrade_*).
REVOKE_PUBLIC = (
    "lo_*", "loread", "lowrite",  # large objects: written even in a READ ONLY transaction
    "pg_advisory_*", "pg_try_advisory_*",  # advisory locks: held past ROLLBACK
    "pg_notify",
    "pg_cancel_backend", "pg_terminate_backend",  # signal the role's other sessions
    "query_to_xml*", "cursor_to_xml*", "table_to_xml*", "schema_to_xml*", "database_to_xml*",
    "ts_stat", "ts_rewrite",  # run SQL passed as text
    "pg_sleep", "pg_sleep_for", "pg_sleep_until",
    "txid_current", "pg_current_xact_id",  # assign a transaction id in READ ONLY
)
DOLLAR = "$pgmcp$"


def revoked_builtins(public: list[tuple[str, str]]) -> list[str]:
    """Signatures of the PUBLIC-executable built-ins `--revoke-public` takes back."""
    dangerous = function_sets()
    return [sig for name, sig in public
            if any(fnmatchcase(name, p) for p in REVOKE_PUBLIC) and dangerous.is_dangerous(name)
            and not (name == "ts_rewrite" and "text" not in sig)]  # only ts_rewrite(tsquery, text) runs SQL


def create_role_sql(role: str, database: str) -> list[str]:
    ident, literal = quote_ident(role), sql_literal(role)
    return [
        f"-- --login: create {role} when it is missing. No password is set here (it would end up in",
        "-- files and shell history): set it with psql's \\password, or from your secret store.",
        f"DO {DOLLAR} BEGIN",
        f"  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {literal}) THEN",
        f"    CREATE ROLE {ident} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;",
        "  END IF;",
        f"END {DOLLAR};",
        "-- PUBLIC may connect to a new database, unless that was revoked: then this lets the role in.",
        f"GRANT CONNECT ON DATABASE {quote_ident(database)} TO {ident};",
        "",
    ]


def attributes_sql(role: RoleFacts) -> list[str]:
    ident = quote_ident(role.name)
    out: list[str] = []
    # (A superuser is refused before this: see pgmcp.grants.build.refuse_unbindable.)
    if role.bypassrls:
        out += [f"-- {role.name} has BYPASSRLS: row-level security does not apply to it at all. Take the",
                "-- attribute away (this statement needs a superuser).",
                f"ALTER ROLE {ident} NOBYPASSRLS;", ""]
    return out


def memberships_sql(role: str, leaks: dict[str, list[str]], broad: tuple[str, ...]) -> list[str]:
    """REVOKE the role's direct memberships that let it read what the policy denies."""
    out: list[str] = []
    for group in sorted(set(leaks) | set(broad)):
        what = ", ".join(leaks.get(group, [])) or "every table (a superuser, BYPASSRLS or pg_read_all_data-like role)"
        out += [f"-- {role} is a member of {group}, through which it reads {what}.",
                f"-- This takes the membership from {role} alone; {group} and its other members keep their rights.",
                f"REVOKE {quote_ident(group)} FROM {quote_ident(role)};", ""]
    return out


def settings_sql(role: str, database: str, limits: EffectiveLimits) -> list[str]:
    target = f"ALTER ROLE {quote_ident(role)} IN DATABASE {quote_ident(database)} SET"
    out = [
        f"-- Session defaults of {role} in {database}, from the policy and the config's limits. pgmcp sets",
        "-- them on its own connections too; here they also hold for a session that bypasses pgmcp.",
        f"{target} default_transaction_read_only = on;",
        f"{target} statement_timeout = {_ms(limits.statement_timeout)};  -- milliseconds",
        f"{target} lock_timeout = {_ms(limits.lock_timeout)};",
        f"{target} idle_in_transaction_session_timeout = {_ms(limits.idle_in_transaction_timeout)};",
    ]
    if limits.work_mem:
        out.append(f"{target} work_mem = {sql_literal(limits.work_mem)};")
    else:
        out.append("-- work_mem: not set (limits.work_mem in the config sets it).")
    if limits.temp_file_limit:
        out += [
            "-- temp_file_limit bounds the temporary files one query may write. Only a superuser (or a",
            "-- role granted SET on it, PostgreSQL 15+) may set it: otherwise this block warns and goes on.",
            f"DO {DOLLAR} BEGIN",
            f"  {target} temp_file_limit = {sql_literal(limits.temp_file_limit)};",
            "EXCEPTION WHEN insufficient_privilege THEN",
            f"  RAISE WARNING 'temp_file_limit for {role.replace(chr(39), '')} not set: it needs a superuser';",
            f"END {DOLLAR};",
        ]
    return [*out, ""]


def revoke_public_sql(signatures: list[str]) -> list[str]:
    out = [
        "-- --revoke-public: built-in functions every role may run, that escape a read-only transaction",
        "-- (large objects, advisory locks, pg_notify, signalling sessions, transaction ids) or run SQL",
        "-- given as text. This changes the database for EVERY role, not only this one: an application",
        "-- that uses one of them needs it back by name (GRANT EXECUTE ON FUNCTION ... TO app_role).",
        "-- Revoking EXECUTE on pg_catalog functions needs a superuser.",
    ]
    if not signatures:
        out.append("-- (none of them is executable by PUBLIC in this database)")
    out += [f"REVOKE EXECUTE ON FUNCTION pg_catalog.{sig} FROM PUBLIC;" for sig in signatures]
    return [*out, ""]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
