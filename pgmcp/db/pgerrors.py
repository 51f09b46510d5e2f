"""asyncpg and OS errors translated, once, into pgmcp's errors.

Every database error that leaves `pgmcp.db` goes through `translate`. The messages are for
whoever must act on them (often a model revising its SQL): which limit cancelled a query,
where in the SQL an unknown name is, PostgreSQL's own hint, and the SQLSTATE for the rest.
They never contain a password: known secrets and DSN passwords are scrubbed from any text
taken from a foreign exception.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from pgmcp.errors import (
    DatabaseUnavailable,
    PermissionDenied,
    PgmcpError,
    QueryFailed,
    QueryTimeout,
    UndefinedObject,
)

_UNDEFINED = frozenset({"42P01", "42703", "42883", "42704", "3F000", "42P02"})
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300", "3D000"})
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class ErrorContext:
    """What the translation needs to know: where, what ran, which limits were in force."""

    database: str
    sql: str | None = None
    statement_timeout_ms: int | None = None
    lock_timeout_ms: int | None = None
    idle_timeout_ms: int | None = None
    secrets: tuple[str, ...] = ()


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every known secret and any DSN/keyword password replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _DSN_PASSWORD.sub(r"\1***@", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def is_connection_lost(exc: BaseException) -> bool:
    """True when `exc` means the connection (not the query) failed: worth one retry."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError | ConnectionError | socket.gaierror):
        return True
    if isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None) in _UNAVAILABLE:
        return bool(exc.sqlstate != "3D000")
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        # "cannot switch to state N; another operation (M) is in progress": the protocol state of
        # a connection whose server went away mid-call (seen while PostgreSQL restarts under load);
        # the connection is unusable, so it is lost like a closed one.
        return "connection is closed" in text or "connection was closed" in text or (
            "another operation" in text and "in progress" in text
        )
    return isinstance(exc, OSError)


def _where(sql: str | None, position: int | None) -> str:
    """' at line L, column C' for PostgreSQL's 1-based character position into `sql`."""
    if not sql or not position or position > len(sql) + 1:
        return ""
    before = sql[: position - 1]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1)
    return f" at line {line}, column {column}"


def _position(exc: BaseException) -> int | None:
    raw = getattr(exc, "position", None)
    try:
        return int(raw) if raw else None
    except (TypeError, ValueError):
        return None


def _unavailable(exc: BaseException, ctx: ErrorContext, text: str) -> DatabaseUnavailable:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "3D000" or (sqlstate or "").startswith("28"):
        hint = "check the database's connection settings (host, port, dbname, user, password) in the config"
    else:
        hint = "pgmcp reconnects on the next call; try again once the server is back"
    return DatabaseUnavailable(
        f"database '{ctx.database}' is unavailable: {text}", hint=hint, sqlstate=sqlstate
    )


def _timeout(exc: BaseException, ctx: ErrorContext, text: str, sqlstate: str | None) -> QueryTimeout | None:
    lowered = text.lower()
    if sqlstate == "57014" and "statement timeout" in lowered:
        limit = "statement_timeout"
        if ctx.statement_timeout_ms:
            limit += f" ({ctx.statement_timeout_ms} ms)"
        return QueryTimeout(
            f"the query was cancelled by {limit}",
            hint="make the query cheaper (filter earlier, aggregate, add LIMIT) or ask for less data",
            sqlstate=sqlstate,
        )
    if sqlstate == "55P03" and "lock timeout" in lowered:
        limit = f"lock_timeout ({ctx.lock_timeout_ms} ms)" if ctx.lock_timeout_ms else "lock_timeout"
        return QueryTimeout(
            f"the query waited too long for a lock and was cancelled by {limit}",
            hint="another session holds a conflicting lock; try again later",
            sqlstate=sqlstate,
        )
    if sqlstate == "25P03":
        limit = f" ({ctx.idle_timeout_ms} ms)" if ctx.idle_timeout_ms else ""
        return QueryTimeout(
            f"the session was closed by idle_in_transaction_session_timeout{limit}", sqlstate=sqlstate
        )
    if sqlstate == "57014":
        return QueryTimeout(f"the query was cancelled: {text}", sqlstate=sqlstate)
    return None


def translate(exc: BaseException, ctx: ErrorContext) -> PgmcpError:
    """The pgmcp error for a foreign exception (pgmcp's own errors pass through unchanged)."""
    if isinstance(exc, PgmcpError):
        return exc
    text = scrub(str(exc) or type(exc).__name__, ctx.secrets)
    sqlstate = getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    if "unsupported startup parameter" in text:
        return DatabaseUnavailable(
            f"database '{ctx.database}' is unavailable: {text}",
            hint=f"this is a connection pooler such as PgBouncer: set `pgbouncer: true` for database "
            f"'{ctx.database}' in the config",
            sqlstate=sqlstate,
        )
    if isinstance(exc, TimeoutError):
        return QueryTimeout(
            f"database '{ctx.database}' did not answer in time (the client-side deadline passed)",
            hint="the server or the network is slow; pgmcp reconnects on the next call",
        )
    if is_connection_lost(exc) or sqlstate == "3D000" or (sqlstate or "").startswith("28"):
        return _unavailable(exc, ctx, text)
    if (timeout := _timeout(exc, ctx, text, sqlstate)) is not None:
        return timeout
    pg_hint = getattr(exc, "hint", None)
    hint = scrub(pg_hint, ctx.secrets) if isinstance(pg_hint, str) and pg_hint else None
    position = _position(exc)
    where = _where(ctx.sql, position)
    if sqlstate == "25006":
        return PermissionDenied(
            f"{text}: pgmcp runs every query in a read-only transaction",
            hint="only read-only queries (SELECT) can run here",
            sqlstate=sqlstate,
        )
    if sqlstate == "42501":
        return PermissionDenied(
            f"{text}{where}",
            hint=hint or "the database role pgmcp connects as lacks this privilege; ask for other data",
            sqlstate=sqlstate, position=position,
        )
    if sqlstate in _UNDEFINED:
        return UndefinedObject(f"{text}{where}", hint=hint, sqlstate=sqlstate, position=position)
    detail = getattr(exc, "detail", None)
    message = f"{text}{where}"
    if isinstance(detail, str) and detail:
        message += f" ({scrub(detail, ctx.secrets)})"
    if sqlstate:
        return QueryFailed(
            f"{message} [SQLSTATE {sqlstate}]", hint=hint, sqlstate=sqlstate, position=position
        )
    return QueryFailed(message, hint=hint)

