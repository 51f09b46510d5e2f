"""One hardened asyncpg pool per configured database.

Every connection starts with pgmcp's session settings (`pgmcp.db.session`: read-only by
default, timeouts, a pinned search_path, `standard_conforming_strings = on`) in its startup
packet, so they are the session's defaults and asyncpg's release reset (`RESET ALL`) puts them
back whatever the previous user of the connection did. `SET ROLE` is re-applied after that
reset, in the same message. A caller that leaves its transaction open for the pool to end
(`acquire(..., end_transaction=True)`, the executor) gets `ROLLBACK` and the reset sent as one
message after it is done, without waiting for it; the connection is back in the pool, reset,
only once that message is answered. Behind
PgBouncer in transaction mode no session state can be relied on: only application_name is
sent, the statement cache is off, and the executor applies everything with `SET LOCAL`
inside each transaction (it does so in every mode, as a second line of defence).

A database that is down, at startup or found down while serving, does not stop the others:
it is re-probed in the background with backoff (at most `RETRY_MAX` seconds apart), so its
status, and `/healthz`, turn up again on their own once it is back, and on the next `acquire`.

A `SQL_ASCII` database stores whatever bytes it was given, and PostgreSQL refuses to send text
that is not valid UTF-8 to a UTF8 client. Such a database is connected with
`client_encoding = LATIN1` (every byte is valid), and `pgmcp.db.oddvalues` decodes its text as
UTF-8 with U+FFFD for invalid sequences.

`check-config --connect` opens its connection through `PoolSet.connect` too, so it connects
exactly as `serve` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from loguru import logger

from pgmcp.config.model import DatabaseConfig, LimitsConfig
from pgmcp.db.pgerrors import ErrorContext, is_connection_lost, scrub, translate
from pgmcp.db.privileges import RoleReport, check_role
from pgmcp.db.release import Releases
from pgmcp.db.serialize import install_codecs
from pgmcp.db.session import DEFAULT_SEARCH_PATH, ms, role_sql, startup_settings, transaction_settings_sql
from pgmcp.errors import DatabaseNotFound, DatabaseUnavailable, UnsafeRole
from pgmcp.observe.metrics import DB_ACTIVE_CONNECTIONS

CONNECT_TIMEOUT = 10.0  # seconds for one connection attempt
RETRY_INITIAL, RETRY_MAX = 0.5, 5.0  # background re-probe backoff (seconds)
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class DatabaseStatus:
    """What is known about one database's connectivity and role, for logs and `status` tools."""

    name: str
    up: bool
    last_error: str | None = None
    role_warnings: tuple[str, ...] = ()
    refused: bool = False  # the role is unsafe and `refuse_unsafe_role` is set
    login_role: str | None = None
    current_role: str | None = None


@dataclass
class _Database:
    config: DatabaseConfig
    search_path: tuple[str, ...]
    pool: Any = None  # asyncpg.Pool once connected
    up: bool = False
    last_error: str | None = None
    role_warnings: tuple[str, ...] = ()
    audit_findings: tuple[str, ...] = ()
    refused: bool = False
    login_role: str | None = None
    current_role: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    retry_task: asyncio.Task[None] | None = None
    audit_task: asyncio.Task[None] | None = None
    sql_ascii: bool = False  # the server's encoding is SQL_ASCII: connect with client_encoding LATIN1


class PoolSet:
    """The pools of every configured database; `acquire(name)` hands out hardened connections."""

    def __init__(
        self,
        configs: Sequence[DatabaseConfig],
        limits: LimitsConfig,
        *,
        search_paths: Mapping[str, Sequence[str]] | None = None,
        audit: Callable[[str, Any], Awaitable[Sequence[str]]] | None = None,
        audit_when: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._limits = limits
        # The privilege audit (pgmcp.grants.audit), run on each database when it connects; the
        # background one (without require_grants) first awaits `audit_when`, if given.
        self._audit = audit
        self._audit_when = audit_when
        self._closed = False
        self._dbs: dict[str, _Database] = {}
        self._releases = Releases()  # connections on their way back (pgmcp.db.release)
        for cfg in configs:
            path = cfg.search_path or (search_paths or {}).get(cfg.name) or DEFAULT_SEARCH_PATH
            self._dbs[cfg.name] = _Database(config=cfg, search_path=tuple(path))

    # -- lookups ---------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        return tuple(self._dbs)

    def _get(self, name: str) -> _Database:
        db = self._dbs.get(name)
        if db is None:
            valid = ", ".join(self._dbs) or "(none)"
            raise DatabaseNotFound(
                f"unknown database '{name}'; configured databases: {valid}",
                hint=f"use one of: {valid}",
            )
        return db

    def config(self, name: str) -> DatabaseConfig:
        return self._get(name).config

    def search_path(self, name: str) -> tuple[str, ...]:
        return self._get(name).search_path

    def statement_timeout(self, name: str) -> float:
        """The configured statement timeout (seconds) for `name`: its own, else the global one."""
        return self._get(name).config.statement_timeout or self._limits.statement_timeout

    def status(self, name: str) -> DatabaseStatus:
        db = self._get(name)
        return DatabaseStatus(
            name=name, up=db.up, last_error=db.last_error, role_warnings=db.role_warnings,
            refused=db.refused, login_role=db.login_role, current_role=db.current_role,
        )

    def error_context(
        self, name: str, sql: str | None = None, statement_timeout: float | None = None
    ) -> ErrorContext:
        """What `pgerrors.translate` needs to word an error about `name` (limits, secrets)."""
        db = self._get(name)
        timeout = statement_timeout or self.statement_timeout(name)
        return ErrorContext(
            database=name, sql=sql, statement_timeout_ms=int(ms(timeout)),
            lock_timeout_ms=int(ms(self._limits.lock_timeout)),
            idle_timeout_ms=int(ms(self._limits.idle_in_transaction_timeout)),
            secrets=(db.config.password.value,) if db.config.password else (),
        )

    # -- hardening -------------------------------------------------------------------------

    def session_settings(self, name: str) -> dict[str, str]:
        """Startup-packet settings: the session defaults that `RESET ALL` returns to."""
        db = self._get(name)
        return startup_settings(db.config, self._limits, db.search_path, self.statement_timeout(name),
                                sql_ascii=db.sql_ascii)

    def local_settings_sql(self, name: str, statement_timeout: float | None = None) -> str:
        """`SET LOCAL ...` statements re-applying the hardening inside one transaction."""
        db = self._get(name)
        return transaction_settings_sql(db.config, self._limits, db.search_path,
                                        statement_timeout or self.statement_timeout(name))

    def _init(self, db: _Database) -> Callable[[Any], Awaitable[None]]:
        async def init(conn: Any) -> None:
            await install_codecs(conn)
            if role := role_sql(db.config):
                await conn.execute(role)

        return init

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create every pool; a database that fails is logged and retried in the background."""
        names = list(self._dbs)
        results = await asyncio.gather(*(self._connect(self._dbs[n]) for n in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, UnsafeRole):
                logger.error("database {}: {}", name, result.message)
            elif isinstance(result, BaseException):
                logger.warning("database {} is down at startup ({}); retrying in background", name, result)
                self._schedule_retry(self._dbs[name])

    async def _connect(self, db: _Database) -> None:
        async with db.lock:
            if db.pool is not None or self._closed:
                return
            cfg = db.config
            pool: Any = None
            try:
                pool, report = await self._open_pool(db)
                if report is None:  # a SQL_ASCII database: once more, with client_encoding LATIN1
                    pool, report = await self._open_pool(db)
                assert report is not None
                # With require_grants the audit decides whether the database is served at all,
                # so it runs first; otherwise it only warns, in the background.
                findings: tuple[str, ...] = ()
                if cfg.require_grants:
                    async with pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                        findings = await self._run_audit(cfg.name, conn)
            except Exception as exc:
                if pool is not None:
                    pool.terminate()
                db.up = False
                error = translate(exc, self.error_context(cfg.name))
                db.last_error = scrub(str(error), self.error_context(cfg.name).secrets)
                raise error from exc
            db.login_role, db.current_role = report.login_role, report.current_role
            db.role_warnings = report.warnings
            for warning in report.warnings:
                logger.warning("database {}: unsafe role: {}", cfg.name, warning)
            if report.unsafe and cfg.refuse_unsafe_role:
                await pool.close()
                db.refused, db.up = True, False
                db.last_error = "refused: " + "; ".join(report.warnings)
                raise UnsafeRole(
                    f"database '{cfg.name}': refusing to use an unsafe role: " + "; ".join(report.warnings),
                    hint="connect as a least-privilege role, or set refuse_unsafe_role: false",
                )
            self._log_audit(db, findings)
            if findings and cfg.require_grants:
                await pool.close()
                db.refused, db.up = True, False
                db.last_error = (
                    f"refused: require_grants is set and the privilege audit found {len(findings)} problem(s)"
                )
                raise UnsafeRole(
                    f"database '{cfg.name}': refusing to serve it: require_grants is set and the privilege audit "
                    "found: " + "; ".join(findings),
                    hint="apply the SQL of `pgmcp policy grants` for this database, or set require_grants: false",
                )
            db.pool, db.up, db.last_error = pool, True, None
            logger.info("database {}: connected (role {})", cfg.name, report.current_role)
            if self._audit is not None and not cfg.require_grants:
                db.audit_task = asyncio.get_running_loop().create_task(self._audit_later(db))

    def _log_audit(self, db: _Database, findings: tuple[str, ...]) -> None:
        db.audit_findings = findings
        for finding in findings:
            logger.warning("database {}: privilege audit: {}", db.config.name, finding)

    async def _audit_later(self, db: _Database) -> None:
        try:
            if self._audit_when is not None:
                await self._audit_when()
            async with self.acquire(db.config.name) as conn:
                self._log_audit(db, await self._run_audit(db.config.name, conn))
        except Exception as exc:  # the database went away meanwhile: it is audited when it is back
            logger.debug("database {}: privilege audit skipped: {}", db.config.name, exc)

    async def _run_audit(self, name: str, conn: Any) -> tuple[str, ...]:
        if self._audit is None:
            return ()
        try:
            return tuple(await self._audit(name, conn))
        except Exception as exc:  # an audit that cannot run proves nothing: it is a finding itself
            return (f"the privilege audit could not run: {type(exc).__name__}: {exc}",)

    async def _open_pool(self, db: _Database) -> tuple[Any, RoleReport | None]:
        """A new pool and its role report; (None, None) when the server turned out to be
        SQL_ASCII and `db` did not know yet (it knows now: connect again)."""
        cfg = db.config
        pool = await asyncpg.create_pool(
            dsn=cfg.dsn, host=cfg.host, port=cfg.port, user=cfg.user, database=cfg.dbname,
            password=cfg.password.value or None, ssl=cfg.sslmode,
            min_size=min(cfg.pool.min_size, cfg.pool.max_size), max_size=cfg.pool.max_size,
            timeout=CONNECT_TIMEOUT, server_settings=self.session_settings(cfg.name),
            statement_cache_size=0 if cfg.pgbouncer else 100,
            init=self._init(db), reset=self._releases.reset_callback(db.config),
        )
        try:
            async with pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                report = await check_role(conn)
                sql_ascii = conn.get_settings().server_encoding == "SQL_ASCII"
        except BaseException:
            pool.terminate()
            raise
        if sql_ascii and not db.sql_ascii:
            db.sql_ascii = True
            pool.terminate()
            return None, None
        return pool, report

    async def connect(self, name: str) -> None:
        """Open `name`'s pool now, raising the translated error (DatabaseUnavailable, UnsafeRole)
        when it cannot: what `check-config --connect` uses, so it connects exactly as serve does."""
        await self._connect(self._get(name))

    def _schedule_retry(self, db: _Database) -> None:
        if self._closed or db.refused:
            return
        if db.retry_task is None or db.retry_task.done():
            db.retry_task = asyncio.get_running_loop().create_task(self._retry(db))

    async def _retry(self, db: _Database) -> None:
        """Probe a down database with backoff until it answers (or pgmcp shuts down)."""
        delay = RETRY_INITIAL
        while not db.up and not self._closed and not db.refused:
            await asyncio.sleep(delay)
            try:
                await self._probe(db)
            except Exception as exc:  # logged; the loop tries again later
                logger.debug("database {}: still down: {}", db.config.name, exc)
            delay = min(delay * 2, RETRY_MAX)
        if db.up:
            logger.info("database {}: up again", db.config.name)

    async def _probe(self, db: _Database) -> None:
        if db.pool is None:
            await self._connect(db)
            return
        pool = db.pool
        async with asyncio.timeout(PROBE_TIMEOUT):
            conn = await pool.acquire()
            try:
                await conn.fetchval("SELECT 1")
            finally:
                await pool.release(conn)
        db.up, db.last_error = True, None

    async def close(self) -> None:
        """Stop background retries and close every pool (terminating it if it hangs)."""
        self._closed = True
        await self._releases.wait(CONNECT_TIMEOUT)
        for db in self._dbs.values():
            if db.audit_task is not None:
                db.audit_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await db.audit_task
            if db.retry_task is not None:
                db.retry_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await db.retry_task
            if db.pool is not None:
                pool, db.pool, db.up = db.pool, None, False
                try:
                    await asyncio.wait_for(pool.close(), timeout=CONNECT_TIMEOUT)
                except (TimeoutError, Exception):
                    pool.terminate()

    # -- use -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, name: str, *, end_transaction: bool = False) -> AsyncIterator[Any]:
        """A hardened connection to `name` (an asyncpg connection), returned to the pool after.

        With `end_transaction`, a block that ends without an error leaves its transaction open:
        `ROLLBACK` and the pool's reset are then sent as one message in the background, and the
        connection goes back to the pool once they are answered; the caller goes on at once
        (`pgmcp.db.release`).

        Raises DatabaseNotFound, UnsafeRole (refused role) or DatabaseUnavailable.
        """
        db = self._get(name)
        if db.refused:
            raise UnsafeRole(f"database '{name}' is refused: {db.last_error}")
        if self._closed:
            raise DatabaseUnavailable(f"database '{name}' is unavailable: pgmcp is shutting down")
        if db.pool is None:
            await self._connect(db)  # lazy retry: the caller is waiting anyway
        pool = db.pool
        try:
            conn = await pool.acquire(timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            await self._lost(db, exc)
            raise translate(exc, self.error_context(name)) from exc
        db.up, db.last_error = True, None
        DB_ACTIVE_CONNECTIONS.labels(database=name).inc()
        try:
            yield conn
        except BaseException as exc:
            if is_connection_lost(exc):
                await self._lost(db, exc)
            await self._releases.give_back(name, pool, conn)
            raise
        if end_transaction:
            self._releases.end_later(db.config, pool, conn)
        else:
            await self._releases.give_back(name, pool, conn)

    async def _lost(self, db: _Database, exc: BaseException) -> None:
        """Mark `db` down and retire its other connections: after a restart they are all dead."""
        db.up = False
        db.last_error = str(translate(exc, self.error_context(db.config.name)))
        if db.pool is not None:
            await db.pool.expire_connections()
        self._schedule_retry(db)
