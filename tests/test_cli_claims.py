"""`--claims` on `pgmcp check-sql` and `pgmcp policy test`: row filters that name claims are
linted and tested as the principal with those claims would see them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase
from tests.tenants import CLAIM_POLICY

POLICY = CLAIM_POLICY + """\
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


PER_TEST = CLAIM_POLICY + """\
tests:
  - {sql: SELECT DISTINCT tenant_id FROM orders, expect: allow, claims: {tenant_id: 1}, rows: [[1]]}
  - {sql: SELECT DISTINCT tenant_id FROM orders, expect: allow, claims: {tenant_id: 2}, rows: [[2]]}
  - {sql: SELECT id FROM orders, expect: deny, rules: [PGM201], claims: {}}
  - {sql: SELECT DISTINCT tenant_id FROM orders, expect: allow, rows: [[3]]}
"""


def test_each_test_may_carry_its_own_claims(tmp_path: Path, pg_database: TestDatabase) -> None:
    pg_database.run_sql("CREATE TABLE public.orders (id int, tenant_id int);"
                        "INSERT INTO public.orders VALUES (1, 1), (2, 2), (3, 3);")
    (tmp_path / "per-test.yaml").write_text(PER_TEST)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_pgmcp("policy", "test", "per-test.yaml", *args, cwd=tmp_path)

    # Offline: each test is checked under its own claims; the last one has none (and no --claims).
    offline = run()
    assert offline.returncode == 1 and "3 passed, 1 failed" in offline.stdout, offline.stdout
    assert "FAIL per-test.yaml:11" in offline.stdout and "needs claim 'tenant_id'" in offline.stdout
    # On the database the rows of each test are those of its own tenant; --claims serves the rest.
    live = run("--database-dsn", pg_database.dsn, "--claims", '{"tenant_id": 3}')
    assert live.returncode == 0, live.stdout
    assert live.stdout.count("(rows checked)") == 3 and "4 passed, 0 failed" in live.stdout
    wrong = run("--database-dsn", pg_database.dsn, "--claims", '{"tenant_id": 1}')
    assert wrong.returncode == 1 and "FAIL per-test.yaml:11" in wrong.stdout and "3 passed, 1 failed" in wrong.stdout
