"""The bundled sample shop: deterministic, loads into a real PostgreSQL, documented, readable
by the least-privilege demo role and by nothing more."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from pgmcp.demo.sample_data import DEMO_ROLE, load_sample_database, sample_database_sql
from pgmcp.demo.tempserver import run_psql
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from tests.conftest import TestDatabase

TABLES = ("customers", "products", "orders", "order_items", "payments", "reviews")


def test_same_seed_gives_byte_identical_script() -> None:
    first = hashlib.sha256(sample_database_sql(42).encode()).hexdigest()
    second = hashlib.sha256(sample_database_sql(42).encode()).hexdigest()
    assert first == second
    assert sample_database_sql(7) != sample_database_sql(42)


def test_script_does_not_depend_on_the_clock() -> None:
    script = sample_database_sql().lower()
    for word in ("now()", "current_timestamp", "current_date", "random()", "clock_timestamp"):
        assert word not in script


def test_a_few_thousand_rows(shop: TestDatabase) -> None:
    counts = {
        table: int(shop.run_sql(f"SELECT count(*) FROM public.{table}").strip()) for table in TABLES
    }
    assert all(count > 0 for count in counts.values()), counts
    assert 2000 <= sum(counts.values()) <= 20000, counts
    assert shop.run_sql("SELECT DISTINCT tenant_id FROM orders ORDER BY 1").split() == ["1", "2", "3"]


def test_order_totals_match_their_items(shop: TestDatabase) -> None:
    mismatches = shop.run_sql(
        "SELECT count(*) FROM orders o WHERE o.total <> "
        "(SELECT sum(quantity * unit_price) FROM order_items i WHERE i.order_id = o.id)"
    )
    assert mismatches.strip() == "0"


def test_every_table_and_most_columns_are_commented(shop: TestDatabase) -> None:
    rows = shop.run_sql(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL, "
        "count(*) FILTER (WHERE col_description(c.oid, a.attnum) IS NOT NULL), count(*) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v') GROUP BY c.oid, c.relname"
    )
    seen: dict[str, tuple[bool, int, int]] = {}
    for line in rows.splitlines():
        name, table_commented, commented, total = line.split("|")
        seen[name] = (table_commented == "t", int(commented), int(total))
    assert set(seen) == {*TABLES, "product_ratings"}
    for relation, (has_comment, n_commented, n_columns) in seen.items():
        assert has_comment, relation
        if relation != "product_ratings":
            assert n_commented >= n_columns / 2, (relation, n_commented, n_columns)


def test_keys_indexes_and_view(shop: TestDatabase) -> None:
    fks = shop.run_sql(
        "SELECT conrelid::regclass || '->' || confrelid::regclass FROM pg_constraint "
        "WHERE contype = 'f' ORDER BY 1"
    ).split()
    assert fks == [
        "order_items->orders", "order_items->products", "orders->customers",
        "payments->orders", "reviews->customers", "reviews->products",
    ]
    pks = shop.run_sql(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace"
    ).strip()
    assert pks == str(len(TABLES))
    assert "orders_customer_id_idx" in shop.run_sql("SELECT indexname FROM pg_indexes")
    best = shop.run_sql(
        "SELECT review_count > 0 FROM product_ratings ORDER BY avg_rating DESC NULLS LAST LIMIT 1"
    )
    assert best.strip() == "t"


def test_payment_details_follow_the_method(shop: TestDatabase) -> None:
    bad = shop.run_sql(
        "SELECT count(*) FROM payments WHERE (method = 'card') <> (card_last4 IS NOT NULL) "
        "OR (method = 'bank_transfer') <> (iban IS NOT NULL)"
    )
    assert bad.strip() == "0"
    # The IBANs carry valid ISO 13616 check digits.
    ibans = shop.run_sql("SELECT iban FROM payments WHERE iban IS NOT NULL").split()
    assert ibans
    for iban in ibans:
        moved = iban[4:] + iban[:4]
        assert int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1, iban


def test_demo_role_is_least_privilege(shop: TestDatabase) -> None:
    attrs = shop.run_sql(
        f"SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
        f"FROM pg_roles WHERE rolname = '{DEMO_ROLE}'"
    ).strip()
    assert attrs == "t|f|f|f|f"
    parts = urlsplit(shop.dsn)
    dsn = urlunsplit(parts._replace(netloc=f"{DEMO_ROLE}@{parts.hostname}:{parts.port}"))
    assert run_psql(dsn, "SELECT count(*) > 0 FROM product_ratings").strip() == "t"
    assert run_psql(dsn, "SELECT count(*) > 0 FROM payments").strip() == "t"
    with pytest.raises(RuntimeError, match="read-only transaction"):
        run_psql(dsn, "DELETE FROM reviews")
    # The read-only default is a convenience the role can switch off; the privileges are not.
    writable = "SET default_transaction_read_only = off;\n"
    with pytest.raises(RuntimeError, match="permission denied for table reviews"):
        run_psql(dsn, writable + "DELETE FROM reviews")
    with pytest.raises(RuntimeError, match="permission denied for schema public"):
        run_psql(dsn, writable + "CREATE TABLE public.x (id int)")


def test_loading_twice_in_one_cluster_reuses_the_role(shop: TestDatabase) -> None:
    name = shop.name + "_b"
    shop.server.run_sql(f'CREATE DATABASE "{name}"')
    try:
        load_sample_database(shop.server.dsn(name))
        assert shop.server.run_sql("SELECT count(*) FROM reviews", name).strip() == "600"
    finally:
        shop.server.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_demo_policy_loads_and_says_what_the_demo_shows() -> None:
    spec = load_policy_spec(["demo"], Path(__file__).parent)
    assert spec.name == "demo"
    assert spec.files[-1].endswith("baseline.yaml")
    assert spec.statements == {"select", "explain"}
    assert (spec.max_rows, spec.statement_timeout_ms) == (200, 5000)
    assert [(f.table, f.condition) for f in spec.row_filters] == [("public.orders", "tenant_id = 1")]
    assert len(spec.tests) >= 10
    policy = compile_policy(spec)
    assert policy.table_decision("public", "orders").allowed
    assert not policy.table_decision("pg_catalog", "pg_authid").allowed
    for table, column in (("customers", "email"), ("customers", "phone"), ("payments", "card_last4"),
                          ("payments", "card_holder"), ("payments", "iban")):
        assert not policy.column_decision("public", table, column).allowed, (table, column)
    assert policy.column_decision("public", "customers", "name").allowed
    assert policy.row_filter("public", "orders") is not None


async def test_demo_policy_tests_pass_on_the_sample_database(shop: TestDatabase) -> None:
    checker = pytest.importorskip("pgmcp.policy.checker")
    from pgmcp.schema.introspect import introspect_dsn

    policy = compile_policy(load_policy_spec(["demo"], Path(__file__).parent))
    snapshot = await introspect_dsn(shop.dsn, "shop")
    for case in policy.spec.tests:
        verdict = checker.check(case.sql, policy, snapshot)
        assert verdict.allowed == (case.expect == "allow"), (case.sql, verdict.violations)
        codes = {v.rule for v in verdict.violations}
        assert set(case.rules) <= codes, (case.sql, codes)
