"""`pgmcp init` against the real PostgreSQL: the files it writes pass check-config (offline and
--connect --strict) and policy test (offline and live), hold no password, and hide what
looks sensitive; bad DSNs and existing files are clear errors, never tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from pgmcp.schema.sensitive import sensitive_reason
from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase

PGMCP = Path(sys.executable).parent / "pgmcp"
PASSWORD = "init-S3cret-" + uuid.uuid4().hex[:8]  # trust auth ignores it; it must never be written

HR_SQL = """
CREATE SCHEMA hr;
CREATE TABLE hr.employees (id int PRIMARY KEY, org_id int, name text, ssn text, salary numeric,
                           work_email text, "Phone Number" text, manager_id int);
CREATE TABLE hr.audit_secrets (id int, api_token text, happened_at timestamptz);
CREATE TABLE hr."Order" (id int, "select" text, tenant_id int, customer_id int);
CREATE VIEW hr.directory AS SELECT id, name, work_email FROM hr.employees;
CREATE VIEW hr.headcount AS SELECT org_id, count(*) AS n FROM hr.employees GROUP BY org_id;
INSERT INTO hr.employees VALUES (1, 1, 'Ada', '123-45-6789', 100, 'ada@example.com', '555', NULL);
"""


def pgmcp(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """In-process (tests/cli_inprocess.py); a terminal on stdin needs a real process (below)."""
    return run_pgmcp(*args, cwd=cwd, env=env, stdin=stdin)


@pytest.fixture(scope="module")
def shop(sample_db: TestDatabase) -> TestDatabase:
    """The sample shop, and a schema hr with names that look sensitive."""
    sample_db.run_sql(HR_SQL)
    return sample_db


def with_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD}@{host}"))


def test_init_writes_files_that_pass_every_check(tmp_path: Path, shop: TestDatabase) -> None:
    done = pgmcp("init", "--dsn", with_password(shop.dsn), "--database-name", "hr", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config, policy = tmp_path / "pgmcp.yaml", tmp_path / "policies" / "hr.yaml"
    assert f"wrote {config.name} and policies/hr.yaml" in done.stdout.replace(str(tmp_path) + "/", "")
    assert "export HR_DB_PASSWORD=..." in done.stdout
    for text in (config.read_text(), policy.read_text(), done.stdout, done.stderr):
        assert PASSWORD not in text
    assert "password: ${HR_DB_PASSWORD}" in config.read_text()
    # The advice names a role of its own: without --role the grants go to the DSN's user (the admin).
    assert "--database hr --role pgmcp_ro --login`" in config.read_text()
    assert "--database hr --role pgmcp_ro --login" in done.stdout

    doc = yaml.safe_load(policy.read_text())
    assert doc["tables"] == {"public.*": "allow", "hr.*": "allow"}
    denied = set(doc["columns"]["deny"])
    for column in ("hr.employees.ssn", "hr.employees.salary", "hr.employees.work_email",
                   "hr.employees.Phone?Number", "hr.audit_secrets.api_token", "hr.directory.work_email",
                   "public.customers.email", "public.payments.iban", "public.payments.card_last4"):
        assert column in denied, column
    for column in ("hr.employees.name", "hr.employees.id", "public.customers.name"):
        assert column not in denied
    text = policy.read_text()
    assert '"hr.employees.ssn"' in text and "# a social security number" in text  # each with its reason
    assert '# "hr.employees": "org_id = 1"' in text  # tenant-like: suggested, commented
    assert '# "hr.Order": "tenant_id = 1"' in text  # the most telling key of the table wins
    assert doc["row_filters"] == {}
    assert doc["tests"], "a tests: stub"

    env = {"HR_DB_PASSWORD": PASSWORD}
    offline = pgmcp("check-config", "--config", "pgmcp.yaml", cwd=tmp_path)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    # (not --strict: that would also fail the privilege audit of the test's superuser)
    live = pgmcp("check-config", "--config", "pgmcp.yaml", "--connect", cwd=tmp_path, env=env)
    assert live.returncode == 0, live.stdout + live.stderr
    assert "match nothing" not in live.stdout and "matches no" not in live.stdout and "FAIL" not in live.stdout
    tested = pgmcp("policy", "test", "policies/hr.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout
    assert tested.stdout.splitlines()[-1].endswith("passed, 0 failed")
    tested_live = pgmcp("policy", "test", "policies/hr.yaml", "--config", "pgmcp.yaml", "--database", "hr",
                        cwd=tmp_path, env=env)
    assert tested_live.returncode == 0, tested_live.stdout
    # what the policy says is what the server enforces: the SSNs stay hidden
    checked = pgmcp("check-sql", "--config", "pgmcp.yaml", "-", cwd=tmp_path, env=env,
                    stdin='SELECT ssn FROM hr.employees;\nSELECT * FROM hr."Order"')
    assert checked.returncode == 1 and "PGM301" in checked.stdout and "1 allowed, 1 denied" in checked.stdout


def test_init_from_the_pg_environment_variables(tmp_path: Path, shop: TestDatabase) -> None:
    parts = urlsplit(shop.dsn)
    env = {"PGHOST": parts.hostname or "", "PGPORT": str(parts.port), "PGUSER": parts.username or "",
           "PGDATABASE": shop.name, "PGPASSWORD": PASSWORD}
    done = pgmcp("init", "--output-dir", "setup", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "setup" / "pgmcp.yaml").read_text()
    name = shop.name
    variable = name.upper() + "_DB_PASSWORD"
    assert f"  {name}:" in config and f"password: ${{{variable}}}" in config
    assert f'host: "{parts.hostname}"' in config and f"port: {parts.port}" in config
    assert PASSWORD not in config + done.stdout + done.stderr
    live = pgmcp("check-config", "--config", "setup/pgmcp.yaml", "--connect", cwd=tmp_path,
                 env={"PGPASSWORD": "", variable: PASSWORD})
    assert live.returncode == 0, live.stdout + live.stderr
    assert "match nothing" not in live.stdout and "FAIL" not in live.stdout


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("postgresql://nobody@127.0.0.1:1/nothing", "cannot connect to --dsn"),
        ("mysql://u@h/db", "--dsn must be a postgresql:// URI"),
        ("postgresql://u@127.0.0.1:notaport/db", "--dsn is not a valid URI"),
        ("postgresql://u@[::1/db", "--dsn is not a valid URI"),
        ("postgresql://u@127.0.0.1:5432/db?sslmode=bogus", "cannot connect to --dsn"),
    ],
)
def test_bad_dsn_is_a_message(tmp_path: Path, dsn: str, says: str) -> None:
    done = pgmcp("init", "--dsn", dsn, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "hint:" in done.stderr
    assert not (tmp_path / "pgmcp.yaml").exists()


def test_bad_name_fails_before_connecting(tmp_path: Path) -> None:
    done = pgmcp("init", "--dsn", "postgresql://nobody@127.0.0.1:1/x", "--database-name", "9 bad", cwd=tmp_path)
    assert done.returncode == 2 and "--database-name '9 bad' is not a valid name" in done.stderr


def test_existing_files_are_kept_unless_forced_or_confirmed(tmp_path: Path, shop: TestDatabase) -> None:
    (tmp_path / "pgmcp.yaml").write_text("# mine\n")
    done = pgmcp("init", "--dsn", shop.dsn, "--database-name", "hr", cwd=tmp_path)
    assert done.returncode == 2 and "pgmcp.yaml already exist(s)" in done.stderr and "--force" in done.stderr
    assert (tmp_path / "pgmcp.yaml").read_text() == "# mine\n"
    for answer, code, kept in ((b"n\n", 1, True), (b"y\n", 0, False)):
        primary, secondary = os.openpty()
        os.write(primary, answer)
        proc = subprocess.run([str(PGMCP), "init", "--dsn", shop.dsn, "--database-name", "hr"], cwd=tmp_path,
                              stdin=secondary, capture_output=True, timeout=120)
        os.close(secondary)
        os.close(primary)
        assert proc.returncode == code, proc.stderr
        assert b"Overwrite? [y/N]" in proc.stdout
        assert ((tmp_path / "pgmcp.yaml").read_text() == "# mine\n") is kept
    forced = pgmcp("init", "--dsn", shop.dsn, "--database-name", "hr", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr


# (column name, hidden?) for the name table of pgmcp.schema.sensitive
NAMES = [
    ("password_hash", True), ("passwordHash", True), ("api_key", True), ("ssn", True), ("iban", True),
    ("card_last4", True), ("salary", True), ("work_email", True), ("phone", True), ("date_of_birth", True),
    ("reset_token", True), ("name", False), ("business", False), ("payment_id", False), ("input_tokens", False),
    ("id", False), ("created_at", False), ("description", False),
]


@pytest.mark.parametrize(("column", "hidden"), NAMES)
def test_sensitive_names(column: str, hidden: bool) -> None:
    assert (sensitive_reason(column) is not None) is hidden
