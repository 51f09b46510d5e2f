"""`pgmcp policy grants`: bad input, `--login`, `--revoke-public`, and rules the database cannot
express (the rule is named, the rest is still generated), on real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import asyncpg
import pytest

from pgmcp.cli import policy_grants
from pgmcp.demo.environment import with_database
from pgmcp.grants.catalog import public_builtins
from pgmcp.grants.role_sql import REVOKE_PUBLIC, revoked_builtins
from pgmcp.policy.functions import function_sets
from tests.conftest import TestDatabase

SETUP = """
CREATE TABLE public.orders (id int PRIMARY KEY, tenant_id int NOT NULL);
INSERT INTO orders VALUES (1, 1), (2, 2);
CREATE TABLE public.items (id int PRIMARY KEY, name text);
INSERT INTO items VALUES (1, 'pen');
CREATE VIEW public.v_items AS SELECT * FROM items;
CREATE FUNCTION public.tenant_ok(t int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT t = 1';
REVOKE EXECUTE ON FUNCTION public.tenant_ok(int) FROM PUBLIC;
"""

POLICY = """\
name: cli-test
tables:
  "public.*": allow
row_filters:
  public.orders: "{orders}"
{extra}"""


@pytest.fixture(scope="module")
def reader(pg_database: TestDatabase) -> Iterator[str]:
    role = f"gcli_reader_{uuid.uuid4().hex[:8]}"
    pg_database.run_sql(SETUP + f"CREATE ROLE {role} LOGIN;")
    yield role
    pg_database.run_sql(f"DROP OWNED BY {role}; DROP ROLE {role};")


def setup(folder: Path, db: TestDatabase, user: str, orders: str = "tenant_id = 1", extra: str = "") -> Path:
    (folder / "policy.yaml").write_text(POLICY.format(orders=orders, extra=extra))
    path = folder / "pgmcp.yaml"
    dsn = with_database(db.dsn, db.name, user=user)
    path.write_text(f"databases:\n  shop:\n    dsn: {dsn}\n    policies: [policy.yaml]\n  other:\n    dsn: {dsn}\n")
    return path


def grants(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = policy_grants.main(["--config", str(config), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_database_and_role(
    tmp_path: Path, pg_database: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, pg_database, reader)
    code, out, err = grants(config, capsys, "--database", "nope")
    assert (code, out) == (2, "")
    assert "no database 'nope' in the config" in err and "configured databases: shop, other" in err
    code, out, err = grants(config, capsys)
    assert code == 2 and "several databases (shop, other); pick one with --database" in err
    code, out, err = grants(config, capsys, "--database", "shop", "--role", "ghost_role_x")
    assert (code, out) == (2, "")
    assert "role 'ghost_role_x' does not exist" in err and "--login" in err
    assert "Traceback" not in err


def test_rules_the_database_cannot_express(
    tmp_path: Path, pg_database: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, pg_database, reader, orders="tenant_ok(tenant_id)",
                   extra='  public.v_items: "id = 1"\n')
    code, out, err = grants(config, capsys, "--database", "shop")
    assert code == 1
    assert f"policy.yaml:5 row_filters[\"public.orders\"] calls tenant_ok(integer), which role {reader} may " \
           "not execute" in err
    assert "row_filters[\"public.v_items\"] applies to public.v_items, a view: PostgreSQL has row-level " \
           "security only on tables" in err
    assert "2 rule(s) the database cannot express; the rest is generated" in err
    assert "-- table public.orders: NOT GRANTED (the policy cannot be expressed)" in out
    assert 'GRANT SELECT ON TABLE "public"."items"' in out and "CREATE POLICY" not in out
    pg_database.run_sql(out)  # what was generated applies cleanly

    config = setup(tmp_path, pg_database, reader, orders="tenant = 1")
    code, out, err = grants(config, capsys, "--database", "shop")
    assert code == 1 and 'is refused by PostgreSQL: column "tenant" does not exist' in err


def test_login_creates_the_role_without_a_password(
    tmp_path: Path, pg_database: TestDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"gcli_new_{uuid.uuid4().hex[:8]}"
    config = setup(tmp_path, pg_database, role)
    code, out, err = grants(config, capsys, "--database", "shop", "--login")
    assert code == 2 and "--admin-dsn" in err  # the role cannot connect before it exists
    code, out, err = grants(config, capsys, "--database", "shop", "--login", "--admin-dsn", pg_database.dsn)
    assert code == 0, err
    assert f'CREATE ROLE "{role}" LOGIN' in out and "PASSWORD" not in out.replace("No password", "")
    assert f'GRANT CONNECT ON DATABASE "{pg_database.name}" TO "{role}";' in out
    try:
        pg_database.run_sql(out)
        pg_database.run_sql(out)  # idempotent, the role included

        async def read() -> tuple[object, ...]:
            conn = await asyncpg.connect(with_database(pg_database.dsn, pg_database.name, user=role))
            try:
                return (await conn.fetchval("SELECT count(*) FROM orders"),
                        await conn.fetchval("SHOW default_transaction_read_only"))
            finally:
                await conn.close()

        assert asyncio.run(read()) == (1, "on")
    finally:
        pg_database.run_sql(f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role};")


def test_revoke_public(
    tmp_path: Path, pg_database: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, pg_database, reader)
    code, out, err = grants(config, capsys, "--database", "shop", "--revoke-public")
    assert code == 0, err
    assert "changes the database for EVERY role" in out
    assert "REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid) FROM PUBLIC;" in out
    assert "pg_catalog.set_config" not in out and "ts_rewrite(tsquery,tsquery,tsquery)" not in out
    pg_database.run_sql(out)

    async def calls() -> list[str]:
        conn = await asyncpg.connect(with_database(pg_database.dsn, pg_database.name, user=reader))
        refused = []
        try:
            for sql in ("SELECT pg_advisory_lock(1)", "SELECT lo_create(0)", "SELECT pg_notify('c', 'x')",
                        "SELECT pg_sleep(0)", "SELECT query_to_xml('SELECT 1', true, true, '')"):
                try:
                    await conn.fetch(sql)
                except asyncpg.InsufficientPrivilegeError:
                    refused.append(sql)
            assert await conn.fetchval("SELECT current_setting('search_path')")  # drivers' needs stay
        finally:
            await conn.close()
        return refused

    assert len(asyncio.run(calls())) == 5


async def test_every_revoke_public_pattern_is_dangerous_and_exists(pg_database: TestDatabase) -> None:
    conn = await asyncpg.connect(pg_database.server.admin_dsn)  # a database no test revoked anything in
    try:
        public = await public_builtins(conn)
    finally:
        await conn.close()
    names = {name for name, _ in public}
    for pattern in REVOKE_PUBLIC:
        matched = [n for n in names if fnmatchcase(n, pattern)]
        assert matched, pattern
        assert all(function_sets().is_dangerous(n) for n in matched), pattern
    assert all(sig.split("(")[0] in names for sig in revoked_builtins(public))


def test_admin_dsn_needs_no_secret_of_the_config(
    tmp_path: Path, pg_database: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The config's password variable is pgmcp's secret: reading the catalogs as an admin needs none.
    config = setup(tmp_path, pg_database, reader)
    config.write_text(config.read_text().replace("    policies:", "    password: ${GCLI_UNSET_PW}\n    policies:", 1))
    monkeypatch.delenv("GCLI_UNSET_PW", raising=False)
    code, out, err = grants(config, capsys, "--database", "shop")
    assert code == 2 and "GCLI_UNSET_PW is not set" in err  # connecting as the config says needs it
    code, out, err = grants(config, capsys, "--database", "shop", "--admin-dsn", pg_database.dsn)
    assert code == 0, err
    assert f'GRANT SELECT ON TABLE "public"."items" TO "{reader}"' in out
    # the header names the policy files as the config does
    assert "-- policy cli-test (policy.yaml); search_path public" in out


@pytest.mark.parametrize("whose", ["superuser", "owner", "owner's member"])
def test_a_role_privileges_do_not_bind_is_refused(
    whose: str, tmp_path: Path, pg_database: TestDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"gcli_owner_{uuid.uuid4().hex[:8]}"
    if whose == "superuser":
        role = pg_database.run_sql("SELECT current_user").strip()
    elif whose == "owner":
        pg_database.run_sql(f"CREATE ROLE {role} LOGIN; CREATE TABLE public.{role}_t (id int);"
                            f"ALTER TABLE public.{role}_t OWNER TO {role};")
    else:  # a member of the owner may SET ROLE to it: as good as the owner
        pg_database.run_sql(f"CREATE ROLE {role}_app; CREATE ROLE {role} LOGIN IN ROLE {role}_app;"
                            f"CREATE TABLE public.{role}_t (id int); ALTER TABLE public.{role}_t OWNER TO {role}_app;")
    try:
        config = setup(tmp_path, pg_database, role)
        code, out, err = grants(config, capsys, "--database", "shop", "--admin-dsn", pg_database.dsn)
        assert (code, out) == (2, ""), err  # nothing printed: no REVOKE that would change nothing
        if whose == "superuser":
            assert f"role '{role}' is a superuser: privileges and row-level security do not apply to it" in err
        else:
            assert f"role '{role}' owns public.{role}_t (or may SET ROLE to the owner)" in err
        assert "--role pgmcp_ro --login" in err and "Traceback" not in err
    finally:
        if whose != "superuser":
            pg_database.run_sql(f"DROP TABLE IF EXISTS public.{role}_t; DROP ROLE IF EXISTS {role};"
                                f"DROP ROLE IF EXISTS {role}_app;")
