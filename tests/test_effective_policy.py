"""One effective policy per database: the config's search_path and limits reach every command.

The database has `orders` in two schemas. The policy allows `sales.*` and denies
`public.orders`, caps rows at 100 and times out at 30 s; the config pins `search_path:
[sales, public]`, lowers `limits.max_rows` to 4 and the database's `statement_timeout` to 2 s.
`SELECT id FROM orders ORDER BY id` must then be judged as sales.orders, capped at LIMIT 4, by
the server (`Runtime`, what `serve` runs), `check-sql --config`, `check-config`,
`explain-policy` and `policy test` alike. Before, the CLI checked it as public.orders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgmcp.cli import check_config, check_sql, explain_policy, policy_test
from pgmcp.config.loader import load_config
from pgmcp.demo.environment import with_database
from pgmcp.policy.effective import effective_policy, standalone_policy
from pgmcp.service.runtime import Runtime
from tests.conftest import TestDatabase
from tests.readers import reader_role

SETUP = """
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id int PRIMARY KEY);
INSERT INTO sales.orders SELECT g FROM generate_series(101, 110) g;
CREATE TABLE public.orders (id int PRIMARY KEY);
INSERT INTO public.orders VALUES (1), (2), (3);
"""

POLICY = """\
name: two-schemas
tables:
  "sales.*": allow
  "public.orders": deny
limits: {max_rows: 100, statement_timeout: 30s}
tests:
  - sql: SELECT id FROM orders ORDER BY id
    expect: allow
    rows: [[101], [102], [103], [104]]
"""

SQL = "SELECT id FROM orders ORDER BY id"


@pytest.fixture(scope="module")
def reader(pg_database: TestDatabase) -> Iterator[str]:
    for name in reader_role(pg_database, SETUP, "effective"):
        pg_database.run_sql(f"GRANT USAGE ON SCHEMA sales TO {name}; GRANT SELECT ON sales.orders TO {name};")
        yield name


@pytest.fixture
def setup(tmp_path: Path, pg_database: TestDatabase, reader: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY)
    monkeypatch.chdir(tmp_path)
    return write_config(tmp_path, with_database(pg_database.dsn, pg_database.name, user=reader))


def write_config(folder: Path, dsn: str, search_path: str = "[sales, public]") -> Path:
    path = folder / "pgmcp.yaml"
    path.write_text(
        "databases:\n"
        "  shop:\n"
        f"    dsn: {dsn}\n"
        "    policies: [policy.yaml]\n"
        f"    search_path: {search_path}\n"
        "    statement_timeout: 2s\n"
        "limits:\n"
        "  max_rows: 4\n"
    )
    return path


def offline_config(setup: Path) -> Path:
    """Without the live schema an unqualified name may be any table of the path, so it is
    judged as each (the denied public.orders among them): offline, the path is [sales] alone."""
    config = load_config(setup)
    return write_config(setup.parent, config.databases[0].dsn or "", "[sales]")


def test_the_builder_applies_the_overrides(setup: Path) -> None:
    config = load_config(setup)
    effective = effective_policy(config, config.databases[0])
    assert effective.search_path == ("sales", "public")
    assert (effective.policy.max_rows, effective.policy.statement_timeout_ms) == (4, 2000)
    assert (effective.limits.max_rows, effective.limits.statement_timeout) == (4, 2.0)
    # Without the config the same document keeps its own settings.
    alone = standalone_policy(["policy.yaml"])
    assert (alone.search_path, alone.policy.max_rows, alone.policy.statement_timeout_ms) == (
        ("public",), 100, 30000
    )


async def test_serve(setup: Path) -> None:
    runtime = Runtime(load_config(setup))
    await runtime.start()
    try:
        verdict = await runtime.check("shop", SQL)
        assert verdict.allowed, verdict.reason()
        assert "LIMIT 4" in verdict.executable_sql
        result = await runtime.execute("shop", SQL)
        assert result.rows == [[101], [102], [103], [104]] or result.rows == [
            {"id": i} for i in (101, 102, 103, 104)
        ]
        assert runtime.executor.statement_timeout("shop") == 2.0
    finally:
        await runtime.close()


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "live"])
def test_check_sql(setup: Path, capsys: pytest.CaptureFixture[str], offline: bool) -> None:
    (setup.parent / "q.sql").write_text(SQL + ";\n")
    config = offline_config(setup) if offline else setup
    argv = ["--config", str(config), "--database", "shop", "--format", "json", "q.sql"]
    code = check_sql.main(argv + (["--offline"] if offline else []))
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert "LIMIT 4" in out["results"][0]["rewritten_sql"]


def test_check_config(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config.main(["--config", str(setup)]) == 0
    out = capsys.readouterr().out
    assert "limits max_rows 4, statement_timeout 2s; search_path sales, public" in out
    assert "config overrides: search_path from databases.shop.search_path" in out


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "live"])
def test_explain_policy(setup: Path, capsys: pytest.CaptureFixture[str], offline: bool) -> None:
    config = offline_config(setup) if offline else setup
    argv = ["--config", str(config), "--database", "shop", "--format", "json", SQL]
    code = explain_policy.main(argv + (["--offline"] if offline else []))
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["violations"]
    assert "sales.orders" in out["relations"]
    assert "LIMIT 4" in out["executable_sql"]


def test_policy_test(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = policy_test.main(["policy.yaml", "--config", str(setup), "--database", "shop"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(rows checked)" in out and out.splitlines()[-1] == "1 passed, 0 failed"


def test_without_the_override_the_cli_would_see_public_orders(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: the same statement under the policy alone is judged as public.orders."""
    (setup.parent / "q.sql").write_text(SQL + ";\n")
    assert check_sql.main(["--policy", "policy.yaml", "--format", "json", "q.sql"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [v["rule"] for v in out["results"][0]["violations"]] == ["PGM201"]
