"""The running core for one config: policies, pools, schema cache, executor, provider, pipeline.

Built by the MCP server's lifespan (and by `pgmcp ask`): `await runtime.start()` opens the
pools and warms the schema cache (a database that is down does not stop the others),
`await runtime.close()` closes everything. Its methods return core values (`QueryResult`,
`Verdict`, `QueryAnswer`, `SchemaView`, ...); `pgmcp.mcp.tools` turns them into the MCP tools'
typed outputs, so nothing here knows MCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache
from loguru import logger

from pgmcp.auth.access import AccessControl
from pgmcp.config.model import Config, DatabaseConfig
from pgmcp.db.executor import Executor, PolicyCheck
from pgmcp.db.pools import PoolSet
from pgmcp.db.result import QueryResult
from pgmcp.errors import (
    AccessDenied,
    DatabaseError,
    DatabaseNotFound,
    Overloaded,
    PgmcpError,
    UndefinedObject,
    UsageError,
)
from pgmcp.llm.breaker import CircuitBreaker
from pgmcp.llm.factory import make_provider
from pgmcp.observe.audit import record_execution, record_verdict
from pgmcp.observe.metrics import DB_ACTIVE_CONNECTIONS, SCHEMA_CACHE_AGE
from pgmcp.observe.redact import register_secrets_in
from pgmcp.observe.stats_file import StatsWriter
from pgmcp.policy.claims import Unbound, refuse_unbound
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.effective import effective_policies, effective_policy
from pgmcp.policy.suggest import missing_relation_hint, relation_suggestions
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.cache import SchemaCache
from pgmcp.schema.filtered import describe, filter_snapshot, render_text
from pgmcp.schema.introspect import introspect
from pgmcp.schema.snapshot import SchemaSnapshot
from pgmcp.service.views import DatabaseView, Refreshed, SchemaView

if TYPE_CHECKING:
    from pgmcp.ask.pipeline import Pipeline, Progress, QueryAnswer, ReturnType
    from pgmcp.llm.base import Provider

AUDIT_DELAY = 2.0  # seconds after connecting that the background audit waits for a first answer


class Runtime:
    """Everything one pgmcp process serves, built from a `Config`."""

    def __init__(
        self, config: Config, *, provider: Provider | None = None, write_stats: bool = False,
        auth_required: bool = False,
    ) -> None:
        register_secrets_in(config)
        self.config = config
        self.effective = effective_policies(config)
        self.policies: dict[str, CompiledPolicy] = {name: e.policy for name, e in self.effective.items()}
        # Who may use what, as which policy (pgmcp.auth.access); with `auth_required` (HTTP with
        # auth) a call without an authenticated principal is refused, never run as the local user.
        self.access = AccessControl(config, self.policies, lambda db, extra: _policy_for(config, db, extra),
                                    auth_required=auth_required)
        self._answered = asyncio.Event()  # a statement was checked or run (`_audit_when`)
        self.pools = PoolSet(
            config.databases, config.limits,
            search_paths={name: p.search_path for name, p in self.policies.items()},
            audit=self._audit, audit_when=self._audit_when,
        )
        self.schemas = SchemaCache(
            self._introspect, config.schema_cache.ttl, config.schema_cache.refresh_ahead
        )
        self._snapshots: dict[str, SchemaSnapshot] = {}
        self._filtered: LRUCache[tuple[str, int], tuple[SchemaSnapshot, CompiledPolicy, SchemaSnapshot]] = (
            LRUCache(256)
        )
        self.executor = Executor(
            self.pools,
            {name: self._checker(name) for name in self.policies},
            config.limits,
            {n: e.limits.statement_timeout for n, e in self.effective.items()},
            max_rows={n: e.limits.max_rows for n, e in self.effective.items()},
            on_verdict=record_verdict,  # every verdict (check_sql, execute_sql, each pipeline attempt)
        )
        self.provider: Provider = provider or make_provider(config.llm)
        self.breaker = CircuitBreaker(
            config.llm.breaker_failures, config.llm.breaker_recovery, name=self.provider.name
        )
        self._pipeline: Pipeline | None = None
        self._starting: asyncio.Future[None] | None = None
        self.started_at = time.time()
        self._stats: StatsWriter | None = None
        if write_stats:
            self._stats = StatsWriter(str(config.path) if config.path else None)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pools and warm the schema cache; a second call waits for the first."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        await self.executor.start()
        await self.pools.open()
        for name in self.pools.names():
            with contextlib.suppress(PgmcpError):
                await self.snapshot(name)
        for name in self.pools.names():
            SCHEMA_CACHE_AGE.labels(database=name).set_function(functools.partial(self._cache_age, name))
            # Make the series exist (at 0) without resetting it: the privilege audit may
            # already hold a connection, and a reset would let its release go below zero.
            DB_ACTIVE_CONNECTIONS.labels(database=name)
        if self._stats is not None:
            self._stats.start()
        logger.info("pgmcp ready: databases {}", ", ".join(self.pools.names()) or "(none)")

    def _cache_age(self, database: str) -> float:
        return self.schemas.age(database) or 0.0

    async def close(self) -> None:
        if self._stats is not None:
            await self._stats.stop()
        await self.schemas.close()
        await self.pools.close()
        await self.executor.close()
        with contextlib.suppress(Exception):
            await self.provider.aclose()

    # -- core operations -------------------------------------------------------------------

    def admit(self) -> None:
        """Let a call in: it has a principal (where authentication is required) within its rate limit."""
        self.access.admit()

    def policy_for(self, database: str) -> tuple[CompiledPolicy, tuple[Unbound, ...]]:
        """The current principal's policy on `database` (access checked, claims bound)."""
        return self.access.policy(database, self.access.principal())

    def resolve(self, database: str | None) -> str:
        """The database a request means: the named one, or the only one the principal may use."""
        principal = self.access.principal()
        names = self.access.visible(principal)
        if database:
            if database not in self.policies:
                close = difflib.get_close_matches(database, names, n=1)
                raise DatabaseNotFound(
                    f"unknown database '{database}'; configured databases: {', '.join(names) or '(none)'}",
                    hint=(f"did you mean '{close[0]}'? " if close else "")
                    + "call list_databases and use one of those names",
                )
            self.access.require(database, principal)
            return database
        if len(names) == 1:
            return names[0]
        if not names and self.policies:
            raise AccessDenied(f"principal {principal.name} may use none of the configured databases",
                               hint="ask an administrator for access")
        raise UsageError(
            f"several databases are configured ({', '.join(names)}); say which one with `database`",
            hint="call list_databases to see them",
        )

    async def _audit(self, database: str, conn: Any) -> list[str]:
        """The privilege audit of `database`'s role; the pools log it and apply require_grants."""
        from pgmcp.grants.audit import audit

        where = f" --config {self.config.path}" if self.config.path else ""
        command = f"pgmcp policy grants{where} --database {database}"
        return [str(f) for f in await audit(conn, database, self.policies[database], command)]

    async def _audit_when(self) -> None:
        """The background privilege audit (warnings only) waits for the first answered statement
        or `AUDIT_DELAY`: it introspects the whole database again (2,000 tables: 0.2 s of CPU,
        the first answer of `serve` 0.36 s later). With `require_grants` it runs at connect."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), AUDIT_DELAY)

    async def _introspect(self, database: str) -> SchemaSnapshot:
        async with self.pools.acquire(database) as conn:
            return await introspect(conn, database)

    async def snapshot(self, database: str) -> SchemaSnapshot:
        """The full (unfiltered) snapshot; the checker uses it for star expansion and views."""
        snap = await self.schemas.get(database)
        self._snapshots[database] = snap
        return snap

    async def _snapshot_or_none(self, database: str) -> SchemaSnapshot | None:
        try:
            return await self.snapshot(database)
        except PgmcpError as exc:
            logger.warning("no schema for {} ({}); checking without it", database, exc)
            return self._snapshots.get(database)

    async def visible_snapshot(self, database: str) -> SchemaSnapshot:
        """The snapshot filtered by the principal's policy: what the LLM and the user may be shown."""
        policy, _ = self.policy_for(database)
        snap = await self.snapshot(database)
        key = (database, id(policy))
        cached = self._filtered.get(key)
        if cached is None or cached[0] is not snap or cached[1] is not policy:
            cached = (snap, policy, filter_snapshot(snap, policy))
            self._filtered[key] = cached
        return cached[2]

    def _checker(self, database: str) -> PolicyCheck:
        """The database's check, run in a checker process with the latest snapshot, under the
        policy of the principal the call runs as (every verdict: check_sql, execute_sql, each
        pipeline attempt). A refusal caused by a claim the principal's token lacks becomes
        `[access_denied]` naming the claim."""

        def policy() -> tuple[CompiledPolicy, Callable[[Verdict], None] | None]:
            policy, unbound = self.policy_for(database)
            return policy, (functools.partial(_refuse_unbound, unbound=unbound) if unbound else None)

        return PolicyCheck(policy, functools.partial(self._snapshots.get, database))

    async def check(self, database: str, sql: str) -> Verdict:
        try:
            await self._snapshot_or_none(database)
            return await self.executor.check(database, sql)
        finally:
            self._answered.set()

    async def execute(self, database: str, sql: str) -> QueryResult:
        """Check and run `sql`; the outcome (rows or error code) is logged and noted for the audit.

        Nothing runs without a schema snapshot: without one the checker cannot see views over
        protected tables, inheritance children or what `*` expands to. The cache keeps serving
        the last snapshot when a refresh fails, so this only refuses a database that was never
        introspected (down since startup, or a role that cannot read the catalogs).
        """
        try:
            return await self._execute(database, sql)
        finally:
            self._answered.set()

    async def _execute(self, database: str, sql: str) -> QueryResult:
        if database in self.policies:
            await self.snapshot(database)
        started = time.perf_counter()
        try:
            result = await self.executor.execute(database, sql)
        except (DatabaseError, Overloaded) as exc:  # raised only after the policy allowed the SQL
            if isinstance(exc, UndefinedObject) and not exc.hint and database in self.policies:
                # offer only what this principal's policy shows
                exc.hint = missing_relation_hint(exc.message, self._snapshots.get(database),
                                                 self.policy_for(database)[0])
            record_execution(database, sql, sql_run=None, row_count=None, truncated=None, error_code=exc.code,
                             elapsed_ms=(time.perf_counter() - started) * 1000)
            raise
        record_execution(database, sql, sql_run=result.sql, row_count=result.row_count,
                         truncated=result.truncated, error_code=None, elapsed_ms=result.elapsed_ms)
        return result

    @property
    def pipeline(self) -> Pipeline:
        """The NL->SQL pipeline over this runtime's schema cache, checker and executor."""
        if self._pipeline is None:
            from pgmcp.ask.pipeline import Pipeline
            from pgmcp.db.concurrency import Limiter

            self._pipeline = Pipeline(
                self.provider, self.breaker, self.config.llm,
                schema_for=self.visible_snapshot, check=self.check, execute=self.execute,
                databases=list(self.policies), max_rows_for=self.executor.row_cap,
                llm_limiter=Limiter.for_llm(self.config.llm),
            )
        return self._pipeline

    # -- what callers (MCP tools, CLI) ask for --------------------------------------------

    async def ask(
        self, question: str, database: str | None, return_type: ReturnType, progress: Progress | None = None
    ) -> QueryAnswer:
        """Answer a question for the caller through the pipeline (SQL written, checked and, for
        "result", run); the database is resolved first, so access is checked before any model is
        asked."""
        database = self.resolve(database)
        return await self.pipeline.query(question, database, return_type, progress=progress)

    async def check_named(self, sql: str, database: str | None) -> tuple[str, Verdict]:
        """The verdict on `sql` for the database a request means (see `resolve`)."""
        name = self.resolve(database)
        return name, await self.check(name, sql)

    async def execute_named(self, sql: str, database: str | None) -> QueryResult:
        return await self.execute(self.resolve(database), sql)

    def databases(self) -> list[DatabaseView]:
        out = []
        principal = self.access.principal()
        for db in self.config.databases:
            if not self.access.may_use(db.name, principal):
                continue
            status = self.pools.status(db.name)
            state = "up" if status.up else f"down ({status.last_error or 'not connected yet'})"
            if status.role_warnings:
                state += "; role warnings: " + "; ".join(status.role_warnings)
            out.append(DatabaseView(
                name=db.name, description=db.description, policy=self.policy_for(db.name)[0].summary(),
                status=state,
            ))
        return out

    async def schema_view(self, database: str | None, tables: list[str] | None) -> SchemaView:
        name = self.resolve(database)
        visible = await self.visible_snapshot(name)
        desc = describe(visible, tables)
        return SchemaView(database=name, description=desc, age_seconds=self.schemas.age(name),
                          suggestions=relation_suggestions(desc["unknown"], visible))  # never a hidden name

    async def schema_text(self, database: str) -> str:
        return render_text(await self.visible_snapshot(self.resolve(database)))

    def policy_text(self, database: str) -> str:
        from pgmcp.policy.describe import describe_policy

        return describe_policy(self.policy_for(self.resolve(database))[0])

    async def refresh(self, database: str | None) -> Refreshed:
        """Introspect again now; on failure keep serving the previous snapshot and say so."""
        name = self.resolve(database)
        try:
            snap = await self.schemas.refresh(name)
            self._snapshots[name] = snap
            return Refreshed(name, snap, stale=False, message="schema refreshed")
        except PgmcpError as exc:
            snap = await self.snapshot(name)
            return Refreshed(
                name, snap, stale=True, message=f"refresh failed, still serving the previous snapshot: {exc}"
            )

    async def health(self) -> dict[str, Any]:
        dbs = {}
        for name in self.pools.names():
            status = self.pools.status(name)
            cache = self.schemas.status(name)
            dbs[name] = {
                "up": status.up, "last_error": status.last_error, "role_warnings": list(status.role_warnings),
                "schema_age_seconds": cache.age, "schema_error": cache.last_error,
            }
        healthy = all(d["up"] for d in dbs.values())
        return {
            "status": "ok" if healthy else "degraded",
            "databases": dbs,
            "llm": {"provider": self.provider.name, "breaker": self.breaker.state},
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }


def _refuse_unbound(verdict: Verdict, *, unbound: tuple[Unbound, ...]) -> None:
    if not verdict.allowed:
        refuse_unbound(verdict, unbound)


def _policy_for(config: Config, db: DatabaseConfig, extra: Sequence[str] = ()) -> CompiledPolicy:
    """The database's effective policy (`pgmcp.policy.effective`) with the `extra` policies of
    access entries merged after its own."""
    return effective_policy(config, db, extra=extra).policy

