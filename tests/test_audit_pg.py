"""The privilege audit on real PostgreSQL: `check-config --connect [--strict]`, `serve` and
`require_grants`, before and after the SQL of `pgmcp policy grants` is applied.

Each module test database starts with a reader that can read far too much; the findings name
each object and the command that fixes it, and are gone once the generated SQL is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from pgmcp.cli import check_config, policy_grants
from pgmcp.config.loader import load_config
from pgmcp.demo.environment import with_database
from pgmcp.errors import UnsafeRole
from pgmcp.service import runtime as runtime_module
from pgmcp.service.runtime import Runtime
from tests.conftest import TestDatabase

SETUP = """
CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text);
INSERT INTO customers VALUES (1, 'ann', 'ann@example.com');
CREATE TABLE public.orders (id int PRIMARY KEY, tenant_id int NOT NULL);
INSERT INTO orders VALUES (1, 1), (2, 2);
CREATE TABLE public.payments (id int PRIMARY KEY, card text);
CREATE TABLE public.audit_log (id int);
"""

POLICY = """\
name: audit-test
tables:
  "public.*": allow
  "public.payments": deny
  "public.audit_log": deny
columns:
  deny: [public.customers.email]
row_filters:
  public.orders: "tenant_id = {tenant}"
"""


@pytest.fixture(scope="module")
def reader(pg_database: TestDatabase) -> Iterator[str]:
    role = f"audit_reader_{uuid.uuid4().hex[:8]}"
    pg_database.run_sql(
        SETUP + f"CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        f"ALTER TABLE audit_log OWNER TO {role};"
    )
    yield role
    pg_database.run_sql(f"DROP OWNED BY {role}; DROP ROLE {role};")


def write_config(folder: Path, db: TestDatabase, user: str | None, *, tenant: int = 1, extra: str = "") -> Path:
    (folder / "policy.yaml").write_text(POLICY.format(tenant=tenant))
    dsn = with_database(db.dsn, db.name, user=user) if user else db.dsn
    path = folder / "pgmcp.yaml"
    path.write_text(f"databases:\n  shop:\n    dsn: {dsn}\n    policies: [policy.yaml]\n{extra}")
    return path


def check(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = check_config.main(["--config", str(config), "--connect", *extra])
    return code, capsys.readouterr().out


def apply_grants(db: TestDatabase, config: Path) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert policy_grants.main(["--config", str(config), "--database", "shop"]) == 0
    db.run_sql(out.getvalue())
    return out.getvalue()


def test_findings_before_and_after_the_grants(
    tmp_path: Path, pg_database: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, pg_database, reader)
    code, out = check(config, capsys)
    assert code == 0, out  # findings are warnings without --strict
    fix = f"fix: apply the SQL printed by `pgmcp policy grants --config {config} --database shop` as an admin"
    expected = [
        "WARN public.audit_log: " + f"{reader} owns it (or may SET ROLE to its owner {reader})",
        f"WARN public.audit_log: {reader} can read it, but the policy does not allow it",
        f"WARN public.customers (email): {reader} can read column(s) the policy denies; {fix}",
        "WARN public.orders: the policy filters its rows (tenant_id = 1) but row-level security is off",
        f"WARN public.payments: {reader} can read it, but the policy does not allow it",
        f"WARN role {reader}: default_transaction_read_only is not on for it in this database",
    ]
    for line in expected:
        assert line in out, out
    assert "privilege audit: 6 finding(s)" in out
    code, out = check(config, capsys, "--strict")
    assert code == 1 and "FAIL public.payments" in out and "(--strict)" in out

    pg_database.run_sql(f"ALTER TABLE audit_log OWNER TO CURRENT_USER; GRANT SELECT ON audit_log TO {reader};")
    sql = apply_grants(pg_database, config)
    assert 'REVOKE ALL ON TABLE "public"."audit_log"' in sql
    code, out = check(config, capsys, "--strict")
    assert code == 0, out
    assert "privilege audit: ok" in out

    # The policy's filter changes: the generated row-level security is now stale.
    write_config(tmp_path, pg_database, reader, tenant=2)
    code, out = check(config, capsys, "--strict")
    assert code == 1
    assert "public.orders: its row-level security enforces an older filter (tenant_id = 1); " \
           "the policy now says tenant_id = 2" in out
    apply_grants(pg_database, config)
    assert check(config, capsys, "--strict")[0] == 0
    write_config(tmp_path, pg_database, reader)
    apply_grants(pg_database, config)


def test_a_superuser_is_one_finding(
    tmp_path: Path, pg_database: TestDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, pg_database, None)
    code, out = check(config, capsys, "--strict")
    assert code == 1
    assert "privilege audit: 1 finding(s)" in out and "is a superuser; fix: connect as a least-privilege role" in out
    # The grants advised are for a role of its own: without --role they would go to the superuser.
    assert "--database shop --role pgmcp_ro --login` as an admin, then log in as pgmcp_ro" in out


def test_require_grants_fails_check_config(
    tmp_path: Path, pg_database: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, pg_database, reader, extra="    require_grants: true\n")
    pg_database.run_sql(f"GRANT SELECT ON payments TO {reader}")
    code, out = check(config, capsys)
    assert code == 1 and "(require_grants is set)" in out and "FAIL public.payments" in out
    apply_grants(pg_database, config)
    assert check(config, capsys)[0] == 0


async def test_serve_warns_and_require_grants_refuses(
    tmp_path: Path, pg_database: TestDatabase, reader: str
) -> None:
    pg_database.run_sql(f"GRANT SELECT ON payments TO {reader}")
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    try:
        runtime = Runtime(load_config(write_config(tmp_path, pg_database, reader)))
        await runtime.start()
        try:
            # served at once; the audit runs in the background and warns
            assert (await runtime.execute("shop", "SELECT id FROM customers")).row_count == 1
            await payments_warned(messages)
        finally:
            await runtime.close()

        strict = Runtime(load_config(write_config(tmp_path, pg_database, reader, extra="    require_grants: true\n")))
        await strict.start()
        try:
            assert strict.pools.status("shop").refused
            with pytest.raises(UnsafeRole, match="require_grants"):
                await strict.execute("shop", "SELECT id FROM customers")
        finally:
            await strict.close()
    finally:
        logger.remove(sink)


def payments_warning(messages: list[str]) -> bool:
    return any(m.startswith("database shop: privilege audit: public.payments: ") for m in messages)


async def payments_warned(messages: list[str]) -> None:
    for _ in range(200):
        if payments_warning(messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no audit warning logged: {messages}")


@pytest.mark.parametrize(("delay", "first_call"), [(60.0, True), (0.2, False)], ids=["after-answer", "after-delay"])
async def test_background_audit_waits_for_the_first_answer(
    tmp_path: Path, pg_database: TestDatabase, reader: str, monkeypatch: pytest.MonkeyPatch, delay: float,
    first_call: bool,
) -> None:
    """The background audit introspects the whole database again, so it does not compete with
    starting: it begins once a statement is answered, or `AUDIT_DELAY` after connecting."""
    monkeypatch.setattr(runtime_module, "AUDIT_DELAY", delay)
    pg_database.run_sql(f"GRANT SELECT ON payments TO {reader}")
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    runtime = Runtime(load_config(write_config(tmp_path, pg_database, reader)))
    try:
        await runtime.start()
        if first_call:
            await asyncio.sleep(0.5)
            assert not payments_warning(messages), "the audit ran before any statement was answered"
            assert (await runtime.check("shop", "SELECT 1")).allowed
        await payments_warned(messages)
    finally:
        await runtime.close()
        logger.remove(sink)
