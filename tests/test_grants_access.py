"""What `pgmcp policy grants` and the audit decide per relation (`pgmcp.grants.access`), table-driven.

No database here: a schema snapshot written out below, one policy, and for each relation the
expected grant. The real-PostgreSQL tests (test_grants_pg.py) prove the SQL made from them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pgmcp.errors import SourceLocation
from pgmcp.grants.access import Access, plan_access
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_file
from pgmcp.policy.spec import RowFilter
from pgmcp.schema.snapshot import ColumnInfo, RelationInfo, SchemaSnapshot

POLICY = """\
name: access-cases
tables:
  "app.*": allow
  "app.secrets": deny
  "app.remote_exact": allow
columns:
  deny: [app.people.email, "*.*.ssn", "app.hidden_all.*"]
row_filters:
  app.orders: "tenant_id = 1"
  app.events_2024: "kind = 'public'"
  app.v_plain: "id = 1"
"""


def rel(name: str, kind: str = "table", cols: str = "id", **extra: object) -> RelationInfo:
    columns = tuple(ColumnInfo(c, "text") for c in cols.split())
    return RelationInfo("app", name, kind, columns, **extra)  # type: ignore[arg-type]


SNAPSHOT = SchemaSnapshot("db", (
    rel("secrets", cols="id token"),
    rel("people", cols="id name email ssn"),
    rel("hidden_all", cols="a b"),
    rel("orders", cols="id tenant_id"),
    rel("order_seq", "sequence", "last_value log_cnt is_called"),
    rel("remote_glob", "foreign_table"),
    rel("remote_exact", "foreign_table"),
    rel("events", "partitioned_table", "id kind"),
    rel("events_2023", cols="id kind", inherits_from=(("app", "events"),)),
    rel("secret_child", cols="id token", inherits_from=(("app", "secrets"),)),
    rel("orders_old", cols="id tenant_id", inherits_from=(("app", "orders"),)),
    rel("events_2024", cols="id kind", inherits_from=(("app", "events"),)),
    rel("v_secrets", "view", depends_on=(("app", "secrets"),)),
    rel("v_secrets_inv", "view", depends_on=(("app", "secrets"),), security_invoker=True),
    rel("v_emails", "view", "id email", depends_on=(("app", "people"),),
        depends_on_columns=(("app", "people", "id"), ("app", "people", "email"))),
    rel("v_names", "view", "id name", depends_on=(("app", "people"),),
        depends_on_columns=(("app", "people", "id"), ("app", "people", "name"))),
    rel("v_orders", "view", depends_on=(("app", "orders"),)),
    rel("v_nested", "view", depends_on=(("app", "v_orders"),)),
    rel("m_orders", "materialized_view", depends_on=(("app", "orders"),)),
    rel("v_plain", "view", depends_on=(("app", "order_seq"),)),
))

# relation -> (grant, columns granted, row filter condition or None, a word of the reason)
CASES = {
    "secrets": ("none", (), None, "denied by"),
    "people": ("columns", ("id", "name"), None, "denies email, ssn"),
    "hidden_all": ("none", (), None, "every column"),
    "orders": ("all", (), "tenant_id = 1", ""),
    "order_seq": ("all", (), None, ""),
    "remote_glob": ("none", (), None, "exact name"),
    "remote_exact": ("all", (), None, ""),
    "events": ("all", (), None, ""),
    "events_2023": ("all", (), None, ""),
    "secret_child": ("none", (), None, "its rows belong to app.secrets"),
    "orders_old": ("none", (), None, "read through the row-filtered app.orders"),
    "events_2024": ("all", (), "kind = 'public'", ""),
    "v_secrets": ("none", (), None, "owner's rights, and it reads the denied app.secrets"),
    "v_secrets_inv": ("all", (), None, ""),
    "v_emails": ("none", (), None, "the denied column app.people.email"),
    "v_names": ("all", (), None, ""),
    "v_orders": ("none", (), None, "the row-filtered app.orders"),
    "v_nested": ("none", (), None, "the row-filtered app.orders"),
    "m_orders": ("none", (), None, "holds a copy of what it read"),
    "v_plain": ("none", (), None, "a view: PostgreSQL has row-level security only on tables"),
}


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Access]:
    path = tmp_path_factory.mktemp("access") / "policy.yaml"
    path.write_text(POLICY)
    policy = compile_policy(load_policy_file(path))
    return {a.relation.name: a for a in plan_access(SNAPSHOT, policy)}


@pytest.mark.parametrize("name", list(CASES))
def test_each_relation(decided: dict[str, Access], name: str) -> None:
    grant, columns, condition, why = CASES[name]
    got = decided[name]
    assert (got.grant, got.columns) == (grant, columns)
    assert (got.row_filter.condition if got.row_filter else None) == condition
    assert why in got.reason
    problem = "row-level security only" in why
    assert (got.problem is not None) == problem
    # views over protected data are listed as left out (a view with an impossible filter is a problem)
    assert got.left_out_view == (name.startswith(("v_", "m_")) and grant == "none" and not problem)


def test_a_claim_dependent_filter_cannot_be_expressed(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('name: claims\ntables:\n  "app.*": allow\n')
    spec = load_policy_file(path)
    where = SourceLocation(str(path), 9, key_path='row_filters["app.orders"]')
    spec = dataclasses.replace(spec, row_filters=(RowFilter("app.orders", "tenant_id = :tenant_id", where),))
    orders = {a.relation.name: a for a in plan_access(SNAPSHOT, compile_policy(spec))}["orders"]
    assert orders.grant == "none"
    assert orders.problem == (
        f'row filter {path}:9 row_filters["app.orders"] depends on the caller\'s claim(s) :tenant_id, which the '
        "database cannot know: one role serves every caller, so it is not granted"
    )
