"""Shared fixtures: a real PostgreSQL for the whole session, one database per test module.

The server is the one named by PGMCP_TEST_DSN when set (it must allow CREATE DATABASE),
otherwise a throwaway cluster started here (`pgmcp.demo.tempserver`) and removed at the end,
also when tests fail.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from pgmcp.demo.tempserver import TemporaryPostgres, run_psql


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


@pytest.fixture(scope="module")
def pg_database(pg_server: TestServer, request: pytest.FixtureRequest) -> Iterator[TestDatabase]:
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    name = f"t_{module[:40]}_{uuid.uuid4().hex[:8]}"
    pg_server.start()
    pg_server.run_sql(f'CREATE DATABASE "{name}"')
    try:
        yield TestDatabase(pg_server, name)
    finally:
        pg_server.start()
        pg_server.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
