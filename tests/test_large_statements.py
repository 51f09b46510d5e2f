"""Very large statements: refused before parsing past `limits.max_sql_bytes`, judged in linear time below it.

The verdicts are asserted, not timings (bench/bench_large.py times these sizes): a check that is
not linear in the statement's size makes these tests crawl (a 200,000-item IN list took 40 s,
4,000 CTEs 15 s). One case of each shape keeps the big size (the allowed 200,000-item IN list,
the allowed 4,000-CTE chain); the refusals and the flat CTE list show their verdicts on a tenth
or a quarter of it, which is as telling for the verdict and costs the suite a fraction.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.spec import DEFAULT_MAX_SQL_BYTES

REPO = Path(__file__).parent.parent
SPEC = load_policy_spec(["shop-analyst"], REPO)
DEFAULT = compile_policy(SPEC)
ROOMY = compile_policy(dataclasses.replace(SPEC, max_sql_bytes=10_000_000))

IN_LIST = "SELECT id FROM orders WHERE id IN (" + ", ".join(str(i) for i in range(200_000)) + ")"
SMALLER_IN_LIST = "SELECT id FROM orders WHERE id IN (" + ", ".join(str(i) for i in range(20_000)) + ")"
CTES = "WITH " + ", ".join(f"c{i} AS (SELECT {i} AS x)" for i in range(1_000)) + " SELECT x FROM c999"


def cte_chain(length: int) -> str:
    """`length` CTEs, each reading the one before; the first reads orders (a row-filtered table)."""
    return (
        "WITH c0 AS (SELECT id, tenant_id FROM orders), "
        + ", ".join(f"c{i} AS (SELECT id, tenant_id FROM c{i - 1})" for i in range(1, length))
        + f" SELECT id FROM c{length - 1}"
    )


CTE_CHAIN = cte_chain(4_000)


def test_default_limit_refuses_before_parsing() -> None:
    assert SPEC.max_sql_bytes == DEFAULT_MAX_SQL_BYTES == 100_000
    verdict = check(IN_LIST, DEFAULT)
    assert [v.rule for v in verdict.violations] == ["PGM007"], verdict.reason()
    assert "max_sql_bytes" in verdict.reason()


def test_huge_in_list_is_judged() -> None:
    verdict = check(IN_LIST, ROOMY)
    assert verdict.allowed, verdict.reason()
    assert verdict.rewritten_sql is not None and "_pgmcp_rf.tenant_id = 1" in verdict.rewritten_sql


def test_long_in_list_with_a_denied_column_is_refused() -> None:
    sql = SMALLER_IN_LIST.replace("WHERE id IN", "WHERE password_hash IN").replace("orders", "users")
    assert len(sql) > 100_000  # still past the default max_sql_bytes
    verdict = check(sql, ROOMY)
    assert not verdict.allowed and "PGM301" in [v.rule for v in verdict.violations]


def test_thousands_of_ctes_are_judged() -> None:
    assert check(CTES, ROOMY).allowed
    verdict = check(CTE_CHAIN, ROOMY)
    assert verdict.allowed, verdict.reason()
    assert verdict.rewritten_sql is not None and verdict.rewritten_sql.count("_pgmcp_rf") == 2


def test_a_thousand_ctes_reaching_a_denied_column_are_refused() -> None:
    sql = cte_chain(1_000).replace("SELECT id, tenant_id FROM orders", "SELECT id, ssn AS tenant_id FROM users")
    verdict = check(sql, ROOMY)
    assert not verdict.allowed and "PGM301" in [v.rule for v in verdict.violations], verdict.reason()
