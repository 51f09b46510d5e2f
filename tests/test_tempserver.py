"""The throwaway PostgreSQL itself: it starts, serves, restarts and cleans up after itself."""

from __future__ import annotations

import os

import pytest

from pgmcp.demo.tempserver import TemporaryPostgres, find_bindir
from pgmcp.errors import PostgresNotFound
from tests.conftest import TestDatabase

pytestmark = pytest.mark.pg  # these start PostgreSQL clusters of their own


def test_each_module_gets_its_own_database(pg_database: TestDatabase) -> None:
    assert pg_database.run_sql("SELECT current_database()").strip() == pg_database.name


def test_cluster_lifecycle_removes_every_file() -> None:
    pg = TemporaryPostgres()
    with pg:
        assert pg.run_sql("SELECT 40 + 2").strip() == "42"
        pg.restart()
        assert pg.run_sql("SELECT 1").strip() == "1"
    assert not pg.base.exists()


def test_missing_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("PGMCP_PG_BINDIR", "/nonexistent")
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(PostgresNotFound) as info:
        find_bindir()
    assert "apt-get install postgresql" in str(info.value)
    assert "--dsn" in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser is only needed when running as root")
def test_runs_as_root_without_sbin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A root shell whose PATH lacks /usr/sbin (where runuser lives) must still work.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with TemporaryPostgres() as pg:
        assert pg.run_sql("SELECT 2").strip() == "2"
