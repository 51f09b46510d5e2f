"""`--claims` on `pgmcp check-sql` and `pgmcp policy test`: row filters that name claims are
linted and tested as the principal with those claims would see them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli_inprocess import run_pgmcp

POLICY = """\
name: tenants
extends: [baseline]
tables:
  "public.*": allow
row_filters:
  public.orders: "tenant_id = :tenant_id"
tests:
  - sql: SELECT id FROM orders
    expect: allow
  - sql: SELECT id FROM secrets_nowhere
    expect: allow
"""


def pgmcp(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "tenants.yaml").write_text(POLICY)
    return run_pgmcp(*args, cwd=tmp_path, stdin=stdin)


CHECK_CASES = [
    ([], 1, ["needs claim 'tenant_id', which is missing from the token"]),
    (["--claims", '{"tenant_id": 7}'], 0, ["1 allowed, 0 denied"]),
    (["--claims", '{"tenant_id": "7\' OR true --"}'], 0, ["1 allowed"]),
    (["--claims", '{"tenant_id": [7, 8]}'], 1, ["needs claim 'tenant_id', which must be one value"]),
    (["--claims", '{"other": 1}'], 1, ["needs claim 'tenant_id'"]),
]


@pytest.mark.parametrize(("args", "code", "expected"), CHECK_CASES)
def test_check_sql_binds_claims(tmp_path: Path, args: list[str], code: int, expected: list[str]) -> None:
    done = pgmcp(tmp_path, "check-sql", "--policy", "tenants.yaml", *args, "-", stdin="SELECT id FROM orders")
    assert done.returncode == code, done.stdout + done.stderr
    for text in expected:
        assert text in done.stdout


def test_check_sql_shows_the_bound_literal(tmp_path: Path) -> None:
    done = pgmcp(tmp_path, "check-sql", "--policy", "tenants.yaml", "--format", "json",
                 "--claims", '{"tenant_id": "x\' OR true --"}', "-", stdin="SELECT id FROM orders")
    assert "tenant_id = 'x'' OR true --'" in done.stdout


@pytest.mark.parametrize(("claims", "message"), [
    ("{not json", "--claims is not valid JSON"), ("[1]", "--claims must be a JSON object")])
def test_bad_claims_are_usage_errors(tmp_path: Path, claims: str, message: str) -> None:
    done = pgmcp(tmp_path, "check-sql", "--policy", "tenants.yaml", "--claims", claims, "-", stdin="SELECT 1")
    assert done.returncode == 2 and message in done.stderr


def test_policy_test_binds_claims(tmp_path: Path) -> None:
    without = pgmcp(tmp_path, "policy", "test", "tenants.yaml")
    assert without.returncode == 1 and "tenant_id" in without.stdout
    bound = pgmcp(tmp_path, "policy", "test", "tenants.yaml", "--claims", '{"tenant_id": 1}')
    assert bound.returncode == 0, bound.stdout
    assert "2 passed, 0 failed" in bound.stdout


def test_explain_policy_binds_claims(tmp_path: Path) -> None:
    bound = pgmcp(tmp_path, "explain-policy", "--policy", "tenants.yaml", "--claims", '{"tenant_id": 3}',
                  "SELECT id FROM orders")
    assert bound.returncode == 0 and "tenant_id = 3" in bound.stdout, bound.stdout
    missing = pgmcp(tmp_path, "explain-policy", "--policy", "tenants.yaml", "SELECT id FROM orders")
    assert missing.returncode == 1 and "needs claim 'tenant_id'" in missing.stdout, missing.stdout
