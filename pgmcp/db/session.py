"""What pgmcp sets on a database session and in each transaction, as SQL text and settings.

Every connection starts read-only by default, with statement/lock/idle timeouts, a pinned
search_path (with pg_temp last, so a temporary object can never shadow a real one),
`standard_conforming_strings = on` (the policy checker's reading of string literals assumes
it) and `application_name = pgmcp`: `startup_settings` go in the startup packet, so they are
the session's defaults and `RESET ALL` returns to them. `transaction_settings_sql` re-applies
them with `SET LOCAL` inside each transaction (behind PgBouncer, where no session state can be
relied on, and everywhere else as a second line of defence), with the call's own statement
timeout and `work_mem`. `reset_sql` is what a connection gets before it goes back to its pool.

The helpers write names and strings so that PostgreSQL reads them the same whatever the
session's settings (`quote_ident`, `sql_literal`); other modules that write SQL use them too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pgmcp.config.model import DatabaseConfig, LimitsConfig

DEFAULT_SEARCH_PATH = ("public",)
_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_$]*")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def search_path_value(schemas: Sequence[str]) -> str:
    """The search_path setting: the schemas (quoted only when needed), then pg_temp."""
    names = [s if _PLAIN_IDENT.fullmatch(s) else quote_ident(s) for s in schemas]
    return ", ".join([*names, "pg_temp"])


def sql_literal(text: str) -> str:
    """An escape-string literal: read the same whatever standard_conforming_strings says."""
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ms(seconds: float) -> str:
    """A duration setting in whole milliseconds (at least 1: 0 would mean no limit)."""
    return str(max(1, round(seconds * 1000)))


def startup_settings(
    config: DatabaseConfig, limits: LimitsConfig, search_path: Sequence[str], statement_timeout: float,
    *, sql_ascii: bool = False,
) -> dict[str, str]:
    """Startup-packet settings: the session defaults that `RESET ALL` returns to."""
    encoding = {"client_encoding": "LATIN1"} if sql_ascii else {}
    if config.pgbouncer:
        # PgBouncer rejects most startup parameters; it tracks these two itself.
        return {"application_name": "pgmcp", **encoding}
    return {
        **encoding,
        "application_name": "pgmcp",
        "default_transaction_read_only": "on",
        "statement_timeout": ms(statement_timeout),
        "lock_timeout": ms(limits.lock_timeout),
        "idle_in_transaction_session_timeout": ms(limits.idle_in_transaction_timeout),
        "search_path": search_path_value(search_path),
        "standard_conforming_strings": "on",
    }


def transaction_settings_sql(
    config: DatabaseConfig, limits: LimitsConfig, search_path: Sequence[str], statement_timeout: float
) -> str:
    """`SET LOCAL ...` statements re-applying the hardening inside one transaction."""
    parts = [
        f"SET LOCAL statement_timeout = {ms(statement_timeout)}",
        f"SET LOCAL lock_timeout = {ms(limits.lock_timeout)}",
        "SET LOCAL idle_in_transaction_session_timeout = " + ms(limits.idle_in_transaction_timeout),
        f"SELECT set_config('search_path', {sql_literal(search_path_value(search_path))}, true)",
        "SET LOCAL standard_conforming_strings = on",
        "SET LOCAL application_name = pgmcp",  # behind a pooler the session's may be another's
        f"SET LOCAL work_mem = {sql_literal(limits.work_mem)}",
    ]
    if config.role:
        parts.append(f"SET LOCAL ROLE {quote_ident(config.role)}")
    return ";\n".join(parts) + ";"


def role_sql(config: DatabaseConfig) -> str:
    """`SET ROLE` for the session (none behind PgBouncer, where it would outlive the transaction)."""
    return f"SET ROLE {quote_ident(config.role)};" if config.role and not config.pgbouncer else ""


def reset_sql(config: DatabaseConfig, reset_query: str) -> str:
    """asyncpg's reset query (`reset_query`: RESET ALL, CLOSE ALL, UNLISTEN *, unlock advisory
    locks), then the role again: RESET ALL resets it too."""
    role = role_sql(config)
    return reset_query + ("\n" + role if role else "")
