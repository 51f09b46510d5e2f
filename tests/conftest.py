"""Shared fixtures: a real PostgreSQL for the whole session, one database per test module.

The server is the one named by PGMCP_TEST_DSN when set (it must allow CREATE DATABASE),
otherwise a throwaway cluster started here (`pgmcp.demo.tempserver`) and removed at the end,
also when tests fail. With pytest-xdist (`-n auto`) every worker process is a session of its
own: its own cluster (random port, private socket directory) and its own template, so tests
that stop or restart the server disturb nobody else; names on a PGMCP_TEST_DSN server are
random per worker.

- `pg_server` (session), `pg_database` (an empty database per module);
- `sample_template` (session): the sample shop (`pgmcp.demo.sample_data`) built once per run
  as a template database; `sample_db` (module) and `sample_db_copy` (one test) are clones of
  it, made by PostgreSQL's file copy (`CREATE DATABASE ... TEMPLATE`) instead of loading the
  data again; `shop` is `sample_db` under the name most modules use;
- `shop_role` (module): the MCP tests' small shop in `pg_database` and a role that may only read it;
- `fake_llm` (module): the fake OpenAI/Anthropic server on 127.0.0.1 (`tests/fakes/`); `fake`
  is the same server, emptied before each test that uses it.

Every test that uses PostgreSQL (through these fixtures, or a cluster of its own: mark the
module `pytest.mark.pg`) carries the `pg` marker, so `pytest -m "not pg"` runs the rest (the
policy engine, prompts, config, providers) in seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pgmcp.demo.sample_data import DEMO_ROLE, load_sample_database
from pgmcp.demo.tempserver import TemporaryPostgres, run_psql
from tests.fakes.llm_server import FakeLLMServer

PG_FIXTURES = {"pg_server"}  # every database fixture depends on it


# The modules that take longest (each a real process or cluster per test, or a long run), longest
# first. They are handed out first: `--dist loadfile` gives each worker whole modules in
# collection order, so a long module collected last would leave the other worker idle at the end.
# Only the order changes (every worker collects the same items in the same order).
LONG_MODULES = (
    "test_demo.py", "test_mcp_stdio.py", "test_stateless_http.py", "test_large_statements.py",
    "test_redaction_session.py", "test_hostile_load.py", "test_mcp_http.py", "test_auth_http.py",
    "test_soak.py", "test_mcp_inspector.py", "test_pgbouncer.py", "test_stats.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pg)
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_MODULES)))  # stable: order within kept


@dataclass
class TestServer:
    """The session's PostgreSQL: an admin DSN, and the cluster when we started it ourselves."""

    __test__ = False
    admin_dsn: str
    cluster: TemporaryPostgres | None

    def dsn(self, dbname: str) -> str:
        parts = urlsplit(self.admin_dsn)
        return urlunsplit(parts._replace(path="/" + dbname))

    def run_sql(self, sql: str, dbname: str | None = None) -> str:
        return run_psql(self.dsn(dbname) if dbname else self.admin_dsn, sql)

    def restart(self) -> None:
        if self.cluster is None:
            pytest.skip("cannot restart a server named by PGMCP_TEST_DSN")
        self.cluster.restart()

    def stop(self) -> None:
        if self.cluster is None:
            pytest.skip("cannot stop a server named by PGMCP_TEST_DSN")
        self.cluster.stop()

    def start(self) -> None:
        if self.cluster is not None and not self.cluster.running:
            self.cluster.start()


@dataclass
class TestDatabase:
    """A database of its own for one test module."""

    __test__ = False
    server: TestServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    def run_sql(self, sql: str) -> str:
        return self.server.run_sql(sql, self.name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    external = os.environ.get("PGMCP_TEST_DSN")
    if external:
        yield TestServer(admin_dsn=external, cluster=None)
        return
    cluster = TemporaryPostgres().start()
    try:
        yield TestServer(admin_dsn=cluster.dsn(), cluster=cluster)
    finally:
        cluster.cleanup()


def _database_name(request: pytest.FixtureRequest) -> str:
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return f"t_{module[:40]}_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def _database(server: TestServer, name: str, template: str | None = None) -> Iterator[TestDatabase]:
    server.start()
    server.run_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield TestDatabase(server, name)
    finally:
        server.start()
        server.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_database(pg_server: TestServer, request: pytest.FixtureRequest) -> Iterator[TestDatabase]:
    with _database(pg_server, _database_name(request)) as db:
        yield db


@pytest.fixture(scope="session")
def sample_template(pg_server: TestServer) -> Iterator[str]:
    """The sample shop, loaded once per run into a template database (no connections allowed,
    so that cloning it never waits for or copies a session)."""
    name = f"t_sample_template_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql(f'CREATE DATABASE "{name}"')
    try:
        load_sample_database(pg_server.dsn(name))
        pg_server.run_sql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        yield name
    finally:
        pg_server.start()
        pg_server.run_sql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        pg_server.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sample_clone(server: TestServer, template: str, name: str) -> contextlib.AbstractContextManager[TestDatabase]:
    @contextlib.contextmanager
    def clone() -> Iterator[TestDatabase]:
        with _database(server, name, template) as db:
            # Database privileges live in the shared catalog, not in the copied files.
            db.run_sql(f'GRANT CONNECT ON DATABASE "{name}" TO {DEMO_ROLE}')
            yield db

    return clone()


@pytest.fixture(scope="module")
def sample_db(pg_server: TestServer, sample_template: str, request: pytest.FixtureRequest) -> Iterator[TestDatabase]:
    """A clone of the sample shop for the module's tests (which must leave it as they found it)."""
    with _sample_clone(pg_server, sample_template, _database_name(request)) as db:
        yield db


@pytest.fixture
def sample_db_copy(
    pg_server: TestServer, sample_template: str, request: pytest.FixtureRequest
) -> Iterator[TestDatabase]:
    """A clone of the sample shop for one test that writes to it."""
    with _sample_clone(pg_server, sample_template, _database_name(request)) as db:
        yield db


@pytest.fixture(scope="module")
def shop(sample_db: TestDatabase) -> TestDatabase:
    """The sample shop (modules that need a different `shop` define their own)."""
    return sample_db


@pytest.fixture(scope="module")
def shop_role(pg_database: TestDatabase) -> Iterator[str]:
    """The small shop of the MCP tests (`tests/mcp_setup.py`: customers, orders) in the module's
    database, and the name of a login role that may only read it (dropped at the end)."""
    from tests.mcp_setup import create_shop, drop_role

    role = create_shop(pg_database)
    yield role
    drop_role(pg_database, role)


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    """A fake OpenAI and Anthropic API on 127.0.0.1 for the module (tests/fakes/llm_server.py)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def fake(fake_llm: FakeLLMServer) -> FakeLLMServer:
    """The module's fake LLM server, emptied (no script, no recorded requests) before each test
    that asks for it by this name (see `_fresh_fake`)."""
    return fake_llm


@pytest.fixture(autouse=True)
def _fresh_fake(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        server = request.getfixturevalue("fake")
        if isinstance(server, FakeLLMServer):  # (a module may define a `fake` of its own)
            server.reset()


# The reader-role modules (red team, attribute notation, name resolution) each define a
# module-scoped `role` fixture (tests/readers.py); these two read through that role.
@pytest.fixture(scope="module")
async def snapshot(pg_database: TestDatabase, role: str) -> Any:
    """The schema snapshot as the module's reader `role` sees it."""
    from pgmcp.schema.introspect import introspect_dsn
    from tests.mcp_setup import role_dsn

    return await introspect_dsn(role_dsn(pg_database, role), pg_database.name)


@pytest.fixture(scope="module")
async def conn(pg_database: TestDatabase, role: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection as the module's reader `role` (no pgmcp in between)."""
    import asyncpg

    from tests.mcp_setup import role_dsn

    connection = await asyncpg.connect(role_dsn(pg_database, role))
    yield connection
    await connection.close()
