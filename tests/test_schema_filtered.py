"""The policy-filtered view never shows a denied table or column, and describes what is left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.document import load_policy_file
from pgmcp.policy.suggest import relation_suggestions
from pgmcp.schema.filtered import describe, filter_snapshot, render_text
from pgmcp.schema.snapshot import SchemaSnapshot
from tests.conftest import TestDatabase
from tests.schema_fixture import SHOP_SQL, snapshot_of

EXTRA_SQL = """
CREATE VIEW shop.customer_emails AS SELECT id, email FROM shop.customers;
CREATE TABLE shop.refunds (
    id integer PRIMARY KEY,
    order_id bigint REFERENCES shop.orders(id),
    line_order bigint, line_no integer,
    FOREIGN KEY (line_order, line_no) REFERENCES shop.order_lines
);
"""
# What policies/shop-analyst.yaml is written for: the public schema.
ANALYST_SQL = """
CREATE TABLE public.users (id integer PRIMARY KEY, name text, password_hash text, ssn text);
CREATE INDEX users_password_idx ON public.users (password_hash);
CREATE TABLE public.secrets (id integer, value text);
CREATE TABLE public.orders (
    id integer PRIMARY KEY, tenant_id integer, user_id integer REFERENCES public.users(id), total numeric
);
ANALYZE public.orders;
CREATE VIEW public.user_names AS SELECT id, name FROM public.users;
CREATE VIEW public.leaky AS SELECT id, password_hash IS NOT NULL AS has_password FROM public.users;
CREATE FUNCTION public.st_double(a integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 2 * a';
CREATE FUNCTION public.mine(a integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT a';
"""


POLICY_YAML = """
name: test-shop
extends: [baseline]
tables:
  "shop.*": allow
  "shop.order_lines": deny
  "hr.payroll": allow
columns:
  deny: [shop.customers.email, "*.*.note"]
functions:
  allow: [shop.order_count]
"""


def compiled(tmp_path: Path, text: str) -> CompiledPolicy:
    path = tmp_path / f"policy-{abs(hash(text))}.yaml"
    path.write_text(text)
    return compile_policy(load_policy_file(path))


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policies")


@pytest.fixture(scope="module")
def policy(policy_dir: Path) -> CompiledPolicy:
    return compiled(policy_dir, POLICY_YAML)


DENIED_NAMES = ("order_lines", "employees", "email", "note", "customer_emails", "hr.team")


@pytest.fixture(scope="module")
async def full(pg_database: TestDatabase) -> SchemaSnapshot:
    pg_database.run_sql(SHOP_SQL + EXTRA_SQL + ANALYST_SQL)
    return await snapshot_of(pg_database.dsn, "shop")


@pytest.fixture(scope="module")
def shown(full: SchemaSnapshot, policy: CompiledPolicy) -> SchemaSnapshot:
    return filter_snapshot(full, policy)


def test_only_visible_relations_remain(shown: SchemaSnapshot) -> None:
    assert {r.qualified_name for r in shown.relations} == {
        "shop.customers", "shop.orders", "shop.customer_orders", "shop.order_totals",
        "shop.events", "shop.events_2024", "shop.refunds",
        "shop.customers_id_seq", "shop.orders_id_seq",  # sequences fall under the table rules
        "hr.payroll",  # reads hidden hr.employees, but allowed by name
    }  # shop.customer_emails reads a hidden column: hidden too


def test_hidden_columns_and_what_mentions_them_are_gone(shown: SchemaSnapshot) -> None:
    customers = shown.relation("shop", "customers")
    orders = shown.relation("shop", "orders")
    refunds = shown.relation("shop", "refunds")
    assert customers is not None and orders is not None and refunds is not None
    assert [c.name for c in customers.columns] == ["id", "name", "created_at"]
    assert {i.name for i in customers.indexes} == {"customers_pkey"}
    assert [c.name for c in orders.columns] == ["id", "customer_id", "status", "total"]
    assert {i.name for i in orders.indexes} == {"orders_pkey", "orders_customer_idx"}
    assert [fk.ref_table for fk in orders.foreign_keys] == ["customers"]
    assert [fk.ref_table for fk in refunds.foreign_keys] == ["orders"]  # not the hidden order_lines


def test_dependencies_on_hidden_relations_are_dropped(shown: SchemaSnapshot, full: SchemaSnapshot) -> None:
    payroll = shown.relation("hr", "payroll")
    assert payroll is not None and payroll.depends_on == () and payroll.depends_on_columns == ()
    view = shown.relation("shop", "customer_orders")
    assert view is not None and view == full.relation("shop", "customer_orders")


def test_functions_and_enums(shown: SchemaSnapshot, policy_dir: Path) -> None:
    assert [(f.schema, f.name) for f in shown.functions] == [("shop", "order_count")]
    assert [e.name for e in shown.enums] == ["order_status"]
    no_status = compiled(policy_dir, POLICY_YAML.replace('"*.*.note"', '"*.*.note", shop.orders.status'))
    assert filter_snapshot(shown, no_status).enums == ()  # only a hidden column used it


def test_row_filtered_tables_lose_their_row_estimate(
    full: SchemaSnapshot, shown: SchemaSnapshot, policy_dir: Path
) -> None:
    row_filtered_policy = compiled(policy_dir, POLICY_YAML + "row_filters:\n  shop.customers: id > 10\n")
    filtered = filter_snapshot(full, row_filtered_policy)
    plain, row_filtered = shown.relation("shop", "customers"), filtered.relation("shop", "customers")
    assert plain is not None and plain.row_estimate == 50
    assert row_filtered is not None and row_filtered.row_estimate is None


def test_no_denied_name_in_any_rendering(shown: SchemaSnapshot) -> None:
    texts = [render_text(shown), json.dumps(describe(shown)),
             render_text(shown, ["customers", "orders"]), json.dumps(describe(shown, ["orders"]))]
    for text in texts:
        for name in DENIED_NAMES:
            assert name not in text


def test_describe_some_tables(shown: SchemaSnapshot) -> None:
    out = describe(shown, ["customers", "shop.orders", "order_lines", "nope", "Customers"])
    assert [r["name"] for r in out["relations"]] == ["customers", "orders"]
    assert out["unknown"] == ["order_lines", "nope"]  # hidden looks exactly like missing
    assert out["enums"] == [{"schema": "shop", "name": "order_status",
                             "labels": ["new", "paid", "shipped", "cancelled"]}]
    assert "functions" not in out
    orders = out["relations"][1]
    assert orders["foreign_keys"] == [{"name": "orders_customer_id_fkey", "columns": ["customer_id"],
                                       "references": "shop.customers", "ref_columns": ["id"]}]
    assert orders["columns"][2] == {"name": "status", "type": "shop.order_status", "nullable": False,
                                    "default": "'new'::shop.order_status", "comment": None}
    whole = describe(shown)
    assert len(whole["relations"]) == len(shown.relations) and whole["unknown"] == []
    assert whole["functions"] == [{"schema": "shop", "name": "order_count", "arguments": "cid integer",
                                   "returns": "bigint", "returns_set": False, "volatility": "stable"}]


def test_unknown_names_get_a_did_you_mean_of_visible_relations_only(shown: SchemaSnapshot) -> None:
    out = describe(shown, ["customer", "shop.order", "order_line", "zzz"])
    suggestions = relation_suggestions(out["unknown"], shown)
    assert suggestions["customer"] == ["customers"] and suggestions["shop.order"] == ["shop.orders"]
    assert "zzz" not in suggestions
    # order_lines exists, one letter away, but the policy hides it: the next visible name is offered.
    assert suggestions["order_line"] == ["orders"]


def test_text_rendering(shown: SchemaSnapshot) -> None:
    text = render_text(shown, ["shop.customers", "customer_orders", "ghost"])
    assert text == (
        "-- database shop: 2 relations\n"
        "TABLE shop.customers (~50 rows)  -- People who buy\n"
        "  id integer NOT NULL DEFAULT nextval('shop.customers_id_seq'::regclass) PK\n"
        "  name character varying(200)\n"
        "  created_at timestamp with time zone NOT NULL DEFAULT now()\n"
        "VIEW shop.customer_orders reads shop.customers, shop.orders\n"
        "  name character varying(200)\n"
        "  total numeric(12,2)\n"
        "-- unknown: ghost\n"
    )
    whole = render_text(shown)
    assert "FUNCTION shop.order_count(cid integer) RETURNS bigint STABLE" in whole
    assert "ENUM shop.order_status: 'new', 'paid', 'shipped', 'cancelled'" in whole
    assert "  INDEX orders_customer_idx btree (customer_id)" in whole
    assert "  FOREIGN KEY (customer_id) REFERENCES shop.customers(id)" in whole


def test_shipped_shop_analyst_policy(full: SchemaSnapshot) -> None:
    analyst = compile_policy(load_policy_file(Path(__file__).parent.parent / "policies/shop-analyst.yaml"))
    shown = filter_snapshot(full, analyst)
    assert {r.qualified_name for r in shown.relations} == {
        "public.users", "public.orders", "public.user_names"
    }  # not secrets (denied), not leaky (reads password_hash), nothing outside public
    users, orders = shown.relation("public", "users"), shown.relation("public", "orders")
    assert users is not None and orders is not None
    assert [c.name for c in users.columns] == ["id", "name"] and users.indexes[0].name == "users_pkey"
    assert len(users.indexes) == 1
    assert orders.row_estimate is None  # row-filtered: the estimate would count other tenants
    assert [(f.schema, f.name) for f in shown.functions] == [("public", "st_double")]
    for text in (render_text(shown), json.dumps(describe(shown))):
        for name in ("password_hash", "ssn", "secrets", "leaky", "mine", "shop.", "hr."):
            assert name not in text
