"""The ops commands: `check-config`, `policy test`, `explain-policy`.

Run as a user runs them (a fresh interpreter, as a subprocess: once per command) and otherwise
in-process through `main(argv)`, with the real loaders and checker, against the session's real PostgreSQL loaded
with the sample shop.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgmcp.cli import check_config, explain_policy, policy_test
from pgmcp.demo.environment import with_database
from tests.conftest import TestDatabase

REPO = Path(__file__).resolve().parent.parent
# `pgmcp <command>` -> (module, words of argv the command takes). pgmcp/cli/main.py (the
# console script's dispatcher) is not in the tree yet: each command runs as `main(argv)` of
# its module, in-process, and as `python -m pgmcp.cli.<module>` in a subprocess.
COMMANDS = {
    "check-config": (check_config, 1),
    "explain-policy": (explain_policy, 1),
    "policy": (policy_test, 2),  # `policy test`
}
PASSWORD = "ops-S3cret-" + uuid.uuid4().hex[:8]  # trust auth ignores it; it must never be printed

POLICY = """\
name: ops-test
extends: [baseline]
statements: [select, explain]
tables:
  "public.*": allow
  "public.payments": deny
columns:
  deny: [public.customers.email, public.customers.phone]
row_filters:
  public.orders: "tenant_id = 1"
limits: {max_rows: 50, statement_timeout: 3s}
"""


def run(argv: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """In-process: `pgmcp ARGV` through the command's `main`, from `cwd`."""
    module, words = COMMANDS[argv[0]]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        code = module.main(argv[words:])
    out, err = capsys.readouterr()
    return code, out, err


def spawn(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """In a fresh interpreter, as a user runs it."""
    module, words = COMMANDS[argv[0]]
    command = [sys.executable, "-m", module.__name__, *argv[words:]]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def reader(shop: TestDatabase) -> Iterator[str]:
    """A plain login role that may read the shop: nothing unsafe about it."""
    role = f"ops_reader_{uuid.uuid4().hex[:8]}"
    shop.run_sql(
        f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'; GRANT USAGE ON SCHEMA public TO {role}; "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
    )
    yield role
    shop.run_sql(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; "
                 f"REVOKE ALL ON SCHEMA public FROM {role}; DROP OWNED BY {role}; DROP ROLE {role};")


def write_setup(tmp: Path, dsn: str, *, extra: str = "", policy: str = POLICY) -> Path:
    (tmp / "ops-policy.yaml").write_text(policy)
    config = tmp / "pgmcp.yaml"
    config.write_text(
        "databases:\n"
        "  shop:\n"
        f"    dsn: {dsn}\n"
        f"    password: {PASSWORD}\n"
        "    policies: [ops-policy.yaml]\n" + extra
    )
    return config


# -- errors are located: file, line, key; exit 2; no traceback --------------------------------

DOCUMENT_ERRORS = [
    # (file written, content, where the error must point: "file:line", key text)
    ("pgmcp.yaml", "databases:\n  shop:\n    dsn: postgresql://u@h/db\n    pool:\n      max_size: lots\n",
     "pgmcp.yaml:5", "databases.shop.pool.max_size"),
    ("pgmcp.yaml", "databases:\n  shop:\n    dsn: postgresql://u@h/db\n    policy: [x.yaml]\n",
     "pgmcp.yaml:4", "policy"),
    ("ops-policy.yaml", 'name: bad\ntables:\n  "public.*": maybe\n',
     "ops-policy.yaml:3", 'tables["public.*"]'),
    ("ops-policy.yaml", "name: bad\ncolumns:\n  deny: [public.customers]\n",
     "ops-policy.yaml:3", "columns.deny"),
]


@pytest.mark.parametrize(("name", "content", "location", "key"), DOCUMENT_ERRORS)
def test_config_and_policy_errors_are_located(
    tmp_path: Path, name: str, content: str, location: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_setup(tmp_path, "postgresql://u@127.0.0.1:1/db")
    (tmp_path / name).write_text(content)
    code, out, err = run(["check-config", "--config", "pgmcp.yaml"], tmp_path, capsys)
    assert code == 2, err
    assert location in err and key in err, err
    assert "hint:" in err
    assert "Traceback" not in err + out


def test_policy_error_in_policy_test_and_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text('name: bad\ntables:\n  "public.*": maybe\n')
    for argv in (["policy", "test", "bad.yaml"], ["explain-policy", "--policy", "bad.yaml", "SELECT 1"]):
        code, _, err = run(argv, tmp_path, capsys)
        assert code == 2
        assert "bad.yaml:3" in err and 'tables["public.*"]' in err, err


def test_missing_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check-config", "--config", "nope.yaml"], tmp_path, capsys)
    assert code == 2 and "nope.yaml" in err and "does not exist" in err


def test_unset_password_variable_reads_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Redaction once masked this message itself: "at databases.shop.password: *** variable ..."
    (tmp_path / "pgmcp.yaml").write_text(
        "databases:\n  shop:\n    dsn: postgresql://u@127.0.0.1:1/db\n    password: ${PGMCP_TEST_UNSET_PW}\n"
    )
    offline = spawn(["check-config", "--config", "pgmcp.yaml"], tmp_path)  # needs no secrets: a note
    assert offline.returncode == 0, offline.stderr
    assert "note: variable PGMCP_TEST_UNSET_PW (at databases.shop.password) is not set" in offline.stdout
    code, _, err = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 2
    assert "at databases.shop.password: environment variable PGMCP_TEST_UNSET_PW is not set" in err
    assert "give a default: ${PGMCP_TEST_UNSET_PW:-value}" in err
    assert "***" not in err


# -- check-config ---------------------------------------------------------------------------------

def test_check_config_offline_summarises_each_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_setup(tmp_path, "postgresql://u@127.0.0.1:1/db")
    code, out, err = run(["check-config", "--config", "pgmcp.yaml"], tmp_path, capsys)
    assert code == 0, err
    assert "database shop: policy ops-test (ops-policy.yaml," in out
    assert "statements explain, select" in out
    denied = "pg_catalog.*, information_schema.*, pg_toast.*, public.payments"
    assert f"tables allow public.* deny {denied};" in out
    assert "hidden columns public.customers.email, public.customers.phone" in out
    assert "row filters public.orders (tenant_id = 1)" in out
    assert "limits max_rows 50, statement_timeout 3s" in out
    assert PASSWORD not in out + err


def test_check_config_connect_plain_role(
    tmp_path: Path, shop: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = with_database(shop.dsn, shop.name, user=reader)
    write_setup(tmp_path, dsn, extra="    refuse_unsafe_role: true\n")
    code, out, err = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 0, out + err
    assert f"as {reader} (PostgreSQL" in out
    assert "WARN unsafe role" not in out and "FAIL" not in out
    # The role reads every table: the privilege audit warns (tests/test_audit_pg.py covers it).
    assert "privilege audit: 4 finding(s)" in out and "WARN public.payments: " in out
    visible = "public.customers, public.order_items, public.orders, public.product_ratings, public.products"
    assert f"visible tables: {visible}, public.reviews\n" in out
    assert "hidden tables: public.payments" in out
    assert "hidden columns: public.customers.email, public.customers.phone" in out
    assert "filtered tables: public.orders (tenant_id = 1)" in out
    assert out.rstrip().endswith("check-config: ok")
    assert PASSWORD not in out + err


def test_check_config_connect_superuser_warns_or_fails(
    tmp_path: Path, shop: TestDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    write_setup(tmp_path, shop.dsn)
    code, out, err = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 0, out + err
    assert "WARN unsafe role: login role" in out and "is a superuser" in out
    write_setup(tmp_path, shop.dsn, extra="    refuse_unsafe_role: true\n")
    code, out, err = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 1
    assert "FAIL unsafe role" in out and "check-config: 1 check(s) failed" in out
    assert PASSWORD not in out + err


def test_check_config_unreachable_database_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_setup(tmp_path, "postgresql://someone@127.0.0.1:1/nowhere")
    code, out, err = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 1
    assert "FAIL cannot connect to database 'shop'" in out
    assert PASSWORD not in out + err


def test_check_config_finds_a_broken_row_filter(
    tmp_path: Path, shop: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = POLICY.replace('"tenant_id = 1"', '"tenant = 1"\n  public.nothing: "id = 1"')
    write_setup(tmp_path, with_database(shop.dsn, shop.name, user=reader), policy=policy)
    code, out, _ = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 1
    # orders has no column tenant: the checker, which knows the live columns, refuses the
    # filter before PostgreSQL is asked (tenant(orders) would be a function call).
    assert "FAIL row filter public.orders (tenant = 1): " in out
    assert "has no column tenant" in out
    assert ('WARN ops-policy.yaml:11 row_filters["public.nothing"]: row filter table "public.nothing" is not in '
            "the live schema\n") in out


# A typo'd rule is valid YAML that protects nothing: check-config --connect must say so.
TYPOS = POLICY.replace('  "public.payments": deny\n', '  "public.payment": deny\n').replace(
    "public.customers.phone", "public.customer.phone"
)


def test_check_config_warns_about_rules_that_match_nothing(
    tmp_path: Path, shop: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_setup(tmp_path, with_database(shop.dsn, shop.name, user=reader), policy=TYPOS)
    code, out, _ = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 0, out
    assert "2 policy rule(s) match nothing in the live schema:" in out
    assert ('WARN ops-policy.yaml:6 tables["public.payment"]: deny rule "public.payment" matches no relation '
            'in the live schema (did you mean "public.payments"?)') in out
    assert ('WARN ops-policy.yaml:8 columns.deny[1]: "public.customer.phone" matches no column in the live '
            'schema (did you mean "public.customers.phone"?)') in out
    assert "hidden columns: public.customers.email\n" in out  # the phone numbers are exposed: hence the warning
    code, out, _ = run(["check-config", "--config", "pgmcp.yaml", "--connect", "--strict"], tmp_path, capsys)
    assert code == 1
    # --strict also fails the privilege audit's findings (this reader may read more than the policy)
    assert out.count("  FAIL ops-policy.yaml:") == 2 and "  WARN ops-policy.yaml:" not in out


def test_check_config_plans_claim_filters_without_claims(
    tmp_path: Path, shop: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter naming a claim (`:tenant_id`) is planned with NULL for it: a good one passes,
    one over a missing column still fails."""
    good = POLICY.replace('"tenant_id = 1"', '"tenant_id = :tenant_id"')
    write_setup(tmp_path, with_database(shop.dsn, shop.name, user=reader), policy=good)
    code, out, _ = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 0, out
    bad = POLICY.replace('"tenant_id = 1"', '"tenant = :tenant_id"')
    write_setup(tmp_path, with_database(shop.dsn, shop.name, user=reader), policy=bad)
    code, out, _ = run(["check-config", "--config", "pgmcp.yaml", "--connect"], tmp_path, capsys)
    assert code == 1 and "FAIL row filter public.orders (tenant = :tenant_id)" in out


# -- policy test ----------------------------------------------------------------------------------

TESTED_POLICY = POLICY + """\
tests:
  - {sql: "SELECT id, name FROM customers", expect: allow}
  - {sql: "SELECT email FROM customers", expect: deny, rules: [PGM301]}
  - {sql: "SELECT * FROM payments", expect: deny, rules: [table-denied]}
  - {sql: "SELECT email FROM customers", expect: allow}
  - {sql: "DELETE FROM orders", expect: deny, rules: [PGM301]}
"""


def test_policy_test_pass_and_fail_lines(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(TESTED_POLICY)
    proc = spawn(["policy", "test", "p.yaml"], tmp_path)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert lines[-1] == "3 passed, 2 failed"
    assert "PASS p.yaml:13 SELECT id, name FROM customers -> allow" in lines
    assert "PASS p.yaml:14 SELECT email FROM customers -> deny [PGM301]" in lines
    assert "PASS p.yaml:15 SELECT * FROM payments -> deny [PGM201]" in lines
    assert "FAIL p.yaml:16 SELECT email FROM customers -> deny [PGM301]" in lines
    assert any("expected allow, got deny: PGM301 column-denied" in line for line in lines)
    assert "FAIL p.yaml:17 DELETE FROM orders -> deny [PGM101]" in lines
    assert any("expected rule(s) PGM301 not reported (reported: PGM101)" in line for line in lines)


def test_shipped_policies_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["policy", "test", "policies/baseline.yaml", "policies/shop-analyst.yaml", "policies/demo.yaml"],
        REPO, capsys,
    )
    assert code == 0, out
    assert re.fullmatch(r"(2[4-9]|[3-9]\d|\d{3,}) passed, 0 failed", out.splitlines()[-1]), out


def test_shipped_demo_policy_passes_on_the_sample_shop(
    shop: TestDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["policy", "test", "demo", "--database-dsn", shop.dsn], REPO, capsys)
    assert code == 0, out
    assert re.fullmatch(r"(2\d|[3-9]\d|\d{3,}) passed, 0 failed", out.splitlines()[-1]), out


ROWS_POLICY = POLICY + """\
tests:
  - sql: SELECT DISTINCT tenant_id FROM orders
    expect: allow
    rows: [[1]]
  - sql: SELECT count(*) > 0, min(tenant_id) FROM orders WHERE tenant_id <> 1
    expect: allow
    rows: [[false, null]]
  - sql: SELECT DISTINCT tenant_id FROM public.orders
    expect: allow
    rows: [[1], [2], [3]]
  - sql: DELETE FROM orders
    expect: allow
    rows: [[0]]
"""


def test_policy_test_rows_on_a_database(
    tmp_path: Path, shop: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = shop.run_sql("SELECT count(*) FROM orders").strip()
    (tmp_path / "p.yaml").write_text(ROWS_POLICY)
    write_setup(tmp_path, with_database(shop.dsn, shop.name, user=reader), policy=ROWS_POLICY)
    code, out, err = run(["policy", "test", "p.yaml", "--config", "pgmcp.yaml", "--database", "shop"],
                         tmp_path, capsys)
    lines = out.splitlines()
    assert code == 1, out + err
    assert lines[-1] == "2 passed, 2 failed"
    assert "PASS p.yaml:13 SELECT DISTINCT tenant_id FROM orders -> allow (rows checked)" in lines
    assert any(line.startswith("PASS p.yaml:16") and "(rows checked)" in line for line in lines)
    assert "FAIL p.yaml:19 SELECT DISTINCT tenant_id FROM public.orders -> allow (rows checked)" in lines
    assert "    expected 3 row(s), got 1; missing [2], [3]" in lines
    # A denied statement is never executed.
    assert "FAIL p.yaml:22 DELETE FROM orders -> deny [PGM101]" in lines
    assert shop.run_sql("SELECT count(*) FROM orders").strip() == before
    assert PASSWORD not in out + err


def test_policy_test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(TESTED_POLICY)
    code, _, err = run(["policy", "test", "p.yaml", "--database-dsn", "postgresql://x@127.0.0.1:1/db",
                        "--database", "shop"], tmp_path, capsys)
    assert code == 2 and "not both" in err
    code, _, err = run(["policy", "test", "p.yaml", "--database-dsn",
                        f"postgresql://x:{PASSWORD}@127.0.0.1:1/db"], tmp_path, capsys)
    assert code == 2 and "cannot connect" in err and PASSWORD not in err


# -- explain-policy -------------------------------------------------------------------------------

def test_explain_policy_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    sql = "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id"
    proc = spawn(["explain-policy", "--policy", "p.yaml", sql], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "policy ops-test (p.yaml, " in out
    assert "allow   PGM2xx table: public.orders" in out
    assert 'at p.yaml:5 tables["public.*"]' in out
    assert "rewrite PGM5xx row-filter: public.orders: tenant_id = 1" in out
    assert 'at p.yaml:10 row_filters["public.orders"]' in out
    assert "at p.yaml:11 limits.max_rows" in out
    assert "verdict: allowed" in out
    assert "(SELECT * FROM public.orders AS _pgmcp_rf WHERE _pgmcp_rf.tenant_id = 1 OFFSET 0) AS o" in out
    assert out.rstrip().endswith("LIMIT 50")

    code, out, _ = run(["explain-policy", "--policy", "p.yaml", "SELECT email FROM customers"], tmp_path, capsys)
    assert code == 1
    assert "1:8 PGM301 column-denied" in out and "at p.yaml:8 columns.deny[0]" in out
    assert "verdict: denied" in out


def test_explain_policy_json_with_live_schema(
    tmp_path: Path, shop: TestDatabase, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_setup(tmp_path, with_database(shop.dsn, shop.name, user=reader))
    argv = ["explain-policy", "--config", "pgmcp.yaml", "--database", "shop", "--format", "json"]
    code, out, err = run([*argv, "SELECT * FROM customers"], tmp_path, capsys)
    data = json.loads(out)
    assert code == 1, err
    assert data["live_schema"] is True and data["allowed"] is False
    # With the live schema the star expands: the denied columns are named, not "unprovable".
    assert {v["rule"] for v in data["violations"]} == {"PGM301"}
    assert data["violations"][0]["source"] == {"file": "ops-policy.yaml", "line": 8, "key": "columns.deny[0]"}

    code, out, _ = run([*argv, "SELECT status, count(*) FROM orders GROUP BY status"], tmp_path, capsys)
    data = json.loads(out)
    assert code == 0 and data["allowed"] is True
    rewrite = [t for t in data["trace"] if t["effect"] == "rewrite"]
    assert [t["rule"] for t in rewrite] == ["PGM5xx", "PGM501"]
    assert rewrite[0]["source"]["key"] == 'row_filters["public.orders"]'
    assert "_pgmcp_rf.tenant_id = 1" in data["rewritten_sql"]
    assert data["executable_sql"] == data["rewritten_sql"]
