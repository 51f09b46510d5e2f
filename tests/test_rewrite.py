"""Data-driven tests of the row-filter fence and the row cap (cases in tests/cases/rewrite.yaml)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp

from pgmcp.errors import PolicyDenied
from pgmcp.policy.rewrite import (
    apply_row_cap,
    apply_row_filters,
    at_path,
    fence_shape,
    node_path,
    to_sql,
)
from tests.sqltrees import resolve

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "rewrite.yaml").read_text())
FILTERS = {("public", "orders"): sqlglot.parse_one("tenant_id = 1", read="postgres")}
FENCE = r"(SELECT * FROM public.orders AS _pgmcp_rf WHERE _pgmcp_rf.tenant_id = 1 OFFSET 0) AS \1"


def expand(out: str) -> str:
    return re.sub(r"F\(([^()]*(?:\([^()]*\))?)\)", lambda m: m.expand(FENCE), out)


@pytest.mark.parametrize("case", CASES["row_filters"], ids=lambda c: c["sql"])
def test_row_filters(case: dict[str, Any]) -> None:
    assert set(case) == {"sql", "out"}
    tree = resolve(case["sql"])
    before = tree.sql("postgres")
    rewritten = to_sql(apply_row_filters(tree, FILTERS))
    assert rewritten == expand(case["out"])
    assert tree.sql("postgres") == before, "the caller's tree must not change"


@pytest.mark.parametrize("case", CASES["row_cap"], ids=lambda c: c["sql"])
def test_row_cap(case: dict[str, Any]) -> None:
    assert set(case) == {"sql", "out", "changed"}
    tree = sqlglot.parse_one(case["sql"], read="postgres")
    before = tree.sql("postgres")
    capped, changed = apply_row_cap(tree, 10)
    assert (to_sql(capped), changed) == (case["out"], case["changed"])
    assert tree.sql("postgres") == before


def test_fence_is_found_by_its_place_not_its_text() -> None:
    fenced = apply_row_filters(resolve("SELECT 1 FROM orders o"), FILTERS)
    sub = next(fenced.find_all(exp.Subquery))
    table = fence_shape(sub)
    assert table is not None and (table.db, table.name) == ("public", "orders")
    # The place survives generating and parsing the text again; that place is what is trusted.
    again = sqlglot.parse_one(to_sql(fenced), read="postgres")
    assert fence_shape(at_path(again, node_path(sub))) is not None  # type: ignore[arg-type]
    assert at_path(again, (("joins", 3),)) is None
    near_misses = [
        "(SELECT * FROM public.orders AS _pgmcp_rf WHERE tenant_id = 1) AS o",  # no OFFSET 0
        "(SELECT * FROM public.orders AS _pgmcp_rf WHERE tenant_id = 1 OFFSET 1) AS o",
        "(SELECT * FROM public.orders AS x WHERE tenant_id = 1 OFFSET 0) AS o",
        "(SELECT * FROM public.orders AS _pgmcp_rf OFFSET 0) AS o",  # no WHERE
        "(SELECT id FROM public.orders AS _pgmcp_rf WHERE tenant_id = 1 OFFSET 0) AS o",
        "(SELECT * FROM public.orders AS _pgmcp_rf JOIN public.t ON TRUE WHERE TRUE OFFSET 0) AS o",
        "(SELECT * FROM public.orders AS _pgmcp_rf WHERE TRUE ORDER BY 1 OFFSET 0) AS o",
        "(SELECT * FROM orders AS _pgmcp_rf WHERE tenant_id = 1 OFFSET 0) AS o",  # no schema
        "(SELECT * FROM public.f() AS _pgmcp_rf WHERE TRUE OFFSET 0) AS o",
    ]
    for text in near_misses:
        node = sqlglot.parse_one(f"SELECT 1 FROM {text}", read="postgres")
        assert fence_shape(next(node.find_all(exp.Subquery))) is None, text


def test_filter_condition_binds_to_the_fenced_table() -> None:
    filters = {("public", "orders"): sqlglot.parse_one(
        "tenant_id = 1 AND region IN (SELECT r FROM public.regions WHERE active)", read="postgres")}
    out = to_sql(apply_row_filters(resolve("SELECT 1 FROM orders"), filters))
    bound = "_pgmcp_rf.tenant_id = 1 AND _pgmcp_rf.region IN (SELECT r FROM public.regions WHERE active)"
    assert bound in out


def test_unfenceable_position_fails_closed() -> None:
    tree = resolve("SELECT 1 FROM orders")
    locked = tree.copy()
    locked.set("locks", [exp.Lock(update=True, expressions=[exp.table_("orders", db="public")])])
    with pytest.raises(PolicyDenied, match="cannot fence"):
        apply_row_filters(locked, FILTERS)
