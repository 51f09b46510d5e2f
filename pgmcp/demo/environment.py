"""The demo's database and config: a throwaway PostgreSQL (or a server named by `--dsn`) holding
the sample shop, and the `Config` that serves it through the least-privilege `pgmcp_demo` role.

`DemoEnvironment.start()` creates the database `shop`, loads the sample data, applies the SQL
of `pgmcp policy grants` for the demo policy (so the database enforces it too) and gives the
role a fresh random password (so the same config works on a throwaway cluster with trust
auth and on a real server with scram), then returns the config. `cleanup()` removes the
throwaway cluster; it is safe to call twice and from a signal handler's unwinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from loguru import logger

from pgmcp.config.loader import load_config
from pgmcp.config.model import Config, DatabaseConfig, LLMConfig, LoggingConfig, PoolConfig, Secret
from pgmcp.demo.sample_data import DEMO_ROLE, load_sample_database
from pgmcp.demo.tempserver import TemporaryPostgres, run_psql
from pgmcp.errors import DatabaseUnavailable

DEMO_DATABASE = "shop"
DEMO_DESCRIPTION = (
    "The pgmcp sample shop: customers, products, orders, order items, payments and reviews "
    "(generated data)"
)


@dataclass(frozen=True)
class DemoServer:
    """Where the demo database lives: an admin DSN (superuser or CREATEDB+CREATEROLE) and,
    for a throwaway cluster, its data folder (gone after cleanup)."""

    admin_dsn: str
    cluster_dir: Path | None


def with_database(dsn: str, dbname: str, user: str | None = None) -> str:
    """`dsn` pointing at another database (and optionally as another user, without password)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{quote(user)}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit(parts._replace(netloc=netloc, path="/" + quote(dbname)))


def llm_config(config_path: Path | None, environ: dict[str, str] | None = None) -> LLMConfig:
    """The demo's LLM settings: the `llm:` part of `--config` when given; otherwise OpenAI or
    Anthropic when its API key is in the environment; otherwise the MCP host's model (`client`)."""
    env = dict(os.environ) if environ is None else environ
    if config_path is not None:
        return load_config(config_path, env).llm
    if env.get("OPENAI_API_KEY"):
        return LLMConfig(provider="openai")
    if env.get("ANTHROPIC_API_KEY"):
        return LLMConfig(provider="anthropic")
    return LLMConfig(provider="client")


class DemoEnvironment:
    """The sample shop on a throwaway cluster (default) or on the server at `admin_dsn`."""

    def __init__(self, admin_dsn: str | None = None) -> None:
        self._admin_dsn = admin_dsn
        self.cluster: TemporaryPostgres | None = None
        self.server: DemoServer | None = None

    def start(self, llm: LLMConfig) -> Config:
        """Start (or reach) the server, create and fill `shop` if needed, return the config.

        Raises `PostgresNotFound` (with install hints) when no server binaries are found and
        no `--dsn` was given; `DatabaseUnavailable` when the server cannot be set up.
        """
        admin = self._admin_dsn
        if admin is None:
            self.cluster = TemporaryPostgres()
            logger.info("starting a throwaway PostgreSQL in {}", self.cluster.base)
            try:
                self.cluster.start()
            except RuntimeError as exc:
                raise DatabaseUnavailable(
                    f"the throwaway PostgreSQL did not start: {exc}",
                    hint="point pgmcp demo at an existing server with --dsn",
                ) from exc
            admin = self.cluster.dsn()
        self.server = DemoServer(admin, self.cluster.base if self.cluster else None)
        password = secrets.token_urlsafe(24)
        config = demo_config(with_database(admin, DEMO_DATABASE, DEMO_ROLE), password, llm)
        try:
            self._prepare(admin, password)
            self._apply_grants(admin, config)
        except RuntimeError as exc:  # psql failed: the message is PostgreSQL's
            raise DatabaseUnavailable(
                f"could not set up the demo database: {exc}",
                hint="with --dsn, the user needs CREATEDB and CREATEROLE (or be a superuser)",
            ) from exc
        return config

    def _prepare(self, admin: str, password: str) -> None:
        exists = run_psql(admin, f"SELECT 1 FROM pg_database WHERE datname = '{DEMO_DATABASE}'").strip()
        shop = with_database(admin, DEMO_DATABASE)
        if not exists:
            run_psql(admin, f'CREATE DATABASE "{DEMO_DATABASE}"')
        loaded = run_psql(shop, "SELECT to_regclass('public.customers') IS NOT NULL").strip() == "t"
        if not loaded:
            logger.info("loading the sample shop into database {}", DEMO_DATABASE)
            load_sample_database(shop)
        else:
            logger.info("database {} already holds the sample shop; reusing it", DEMO_DATABASE)
        # Set each run, so that the config can carry it; never printed (Secret).
        run_psql(shop, f"ALTER ROLE {DEMO_ROLE} PASSWORD '{password}'")

    def _apply_grants(self, admin: str, config: Config) -> None:
        """Make the database enforce the demo policy for the demo role too (`pgmcp policy
        grants`): column privileges, row-level security on orders, read-only role settings."""
        from pgmcp.grants.build import generate_grants
        from pgmcp.policy.effective import effective_policy

        shop = with_database(admin, DEMO_DATABASE)
        db = config.databases[0]

        async def generate() -> str:
            conn = await asyncpg.connect(shop, statement_cache_size=0)
            try:
                return (await generate_grants(conn, effective_policy(config, db), db.name, DEMO_ROLE)).sql
            finally:
                await conn.close()

        run_psql(shop, asyncio.run(generate()))

    def cleanup(self) -> None:
        """Stop and remove the throwaway cluster (nothing is removed from a `--dsn` server)."""
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.cleanup()


def demo_config(dsn: str, password: str, llm: LLMConfig) -> Config:
    """The config `pgmcp demo` serves: one database `shop`, the shipped `demo` policy."""
    database = DatabaseConfig(
        name=DEMO_DATABASE,
        dsn=dsn,
        password=Secret(password),
        description=DEMO_DESCRIPTION,
        policies=("demo",),
        pool=PoolConfig(min_size=1, max_size=4),
    )
    return Config(path=None, databases=(database,), llm=llm, logging=LoggingConfig(level="WARNING"))
