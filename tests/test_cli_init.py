"""`pgmcp init` against the real PostgreSQL: the files it writes hold no password and hide what
looks sensitive; its role SQL, applied with the psql command it prints, creates the role the
config logs in as, and then check-config --connect --strict and policy test pass as that role;
bad DSNs, roles privileges would not bind and existing files are clear errors, never tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from pgmcp.demo.environment import with_database
from pgmcp.demo.tempserver import find_bindir, run_psql
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
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = "", terminal: bool = False
) -> subprocess.CompletedProcess[str]:
    """In-process (tests/cli_inprocess.py); a real terminal on stdin needs a real process (below)."""
    return run_pgmcp(*args, cwd=cwd, env=env, stdin=stdin, terminal=terminal)


@pytest.fixture(scope="module")
def shop(sample_db: TestDatabase) -> TestDatabase:
    """The sample shop, and a schema hr with names that look sensitive."""
    sample_db.run_sql(HR_SQL)
    return sample_db


def with_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD}@{host}"))


@pytest.fixture
def role(shop: TestDatabase) -> Iterator[str]:
    """A fresh name for the role init's SQL creates; dropped afterwards."""
    name = f"init_ro_{uuid.uuid4().hex[:8]}"
    yield name
    if shop.run_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'").strip():
        shop.run_sql(f"DROP OWNED BY {name} CASCADE; DROP ROLE {name};")


def apply_line(stdout: str, role_sql: str) -> str:
    """The psql command init printed for applying the role SQL."""
    return next(line.split("   #")[0].strip() for line in stdout.splitlines() if f"-f {role_sql}" in line)


def run_printed(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command init printed, in a shell, as a user would paste it."""
    path = f"{find_bindir()}:{os.environ['PATH']}"
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": path, **env})


def test_init_writes_files_that_pass_every_check(tmp_path: Path, shop: TestDatabase, role: str) -> None:
    done = pgmcp("init", "--dsn", with_password(shop.dsn), "--database-name", "hr", "--role", role, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config, policy, role_sql = tmp_path / "pgmcp.yaml", tmp_path / "policies" / "hr.yaml", tmp_path / "pgmcp-role.sql"
    assert "wrote pgmcp.yaml, policies/hr.yaml and pgmcp-role.sql" in done.stdout
    assert "export HR_DB_PASSWORD='...'" in done.stdout
    for text in (config.read_text(), policy.read_text(), role_sql.read_text(), done.stdout, done.stderr):
        assert PASSWORD not in text
    # The config logs in as the new role, with its password from the environment, and refuses unsafe roles.
    admin = urlsplit(shop.dsn)
    assert f'dsn: "postgresql://{role}@{admin.hostname}:{admin.port}/{shop.name}"' in config.read_text()
    assert "password: ${HR_DB_PASSWORD}" in config.read_text()
    assert "\n    refuse_unsafe_role: true\n" in config.read_text()

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

    # The role SQL is `policy grants --role ROLE --login` for these files, the same code: identical
    # to what the command prints (read through the admin's connection), plus the psql password part.
    sql = role_sql.read_text()
    grants = pgmcp("policy", "grants", "--config", "pgmcp.yaml", "--database", "hr", "--role", role, "--login",
                   "--admin-dsn", shop.dsn, cwd=tmp_path)  # no HR_DB_PASSWORD needed through --admin-dsn
    assert grants.returncode == 0, grants.stderr
    assert grants.stdout in sql and sql.index(grants.stdout) > 0
    assert sql.rstrip().endswith("\\endif") and f"ALTER ROLE \"{role}\" PASSWORD :'pw';" in sql
    assert "-- policy hr (policies/hr.yaml, <shipped>/baseline.yaml)" in sql

    # Offline, the files pass as written; the role does not exist yet.
    offline = pgmcp("check-config", "--config", "pgmcp.yaml", cwd=tmp_path)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    tested = pgmcp("policy", "test", "policies/hr.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout
    assert tested.stdout.splitlines()[-1].endswith("passed, 0 failed")

    # Applied as the admin with the command init printed, the role exists with its password ...
    env = {"HR_DB_PASSWORD": PASSWORD}
    applied = run_printed(apply_line(done.stdout, "pgmcp-role.sql"), tmp_path, env)
    assert applied.returncode == 0, applied.stderr
    assert PASSWORD not in applied.stdout + applied.stderr
    assert shop.run_sql(f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{role}'"
                        ).strip() == "t"
    # ... and every check passes as that role: --strict fails on any privilege-audit finding.
    live = pgmcp("check-config", "--config", "pgmcp.yaml", "--connect", "--strict", cwd=tmp_path, env=env)
    assert live.returncode == 0, live.stdout + live.stderr
    assert f"as {role} " in live.stdout and "privilege audit: ok" in live.stdout
    assert "match nothing" not in live.stdout and "matches no" not in live.stdout and "FAIL" not in live.stdout
    tested_live = pgmcp("policy", "test", "policies/hr.yaml", "--config", "pgmcp.yaml", "--database", "hr",
                        cwd=tmp_path, env=env)
    assert tested_live.returncode == 0, tested_live.stdout
    # what the policy says is what the server enforces: the SSNs stay hidden
    checked = pgmcp("check-sql", "--config", "pgmcp.yaml", "-", cwd=tmp_path, env=env,
                    stdin='SELECT ssn FROM hr.employees;\nSELECT * FROM hr."Order"')
    assert checked.returncode == 1 and "PGM301" in checked.stdout and "1 allowed, 1 denied" in checked.stdout
    # ... and by PostgreSQL itself, for the role: allowed columns read, the hidden one refused.
    as_role = with_database(shop.dsn, shop.name, user=role)
    assert run_psql(as_role, "SELECT name FROM hr.employees").strip() == "Ada"
    with pytest.raises(RuntimeError, match="permission denied"):
        run_psql(as_role, "SELECT ssn FROM hr.employees")
    # Applied again (idempotent), without -v pw: the password is kept, and psql says how to set one.
    again = run_printed(f"psql -X -v ON_ERROR_STOP=1 -f pgmcp-role.sql '{shop.dsn}'", tmp_path, {})
    assert again.returncode == 0 and f"\\password {role}" in again.stdout, again.stderr
    assert pgmcp("check-config", "--config", "pgmcp.yaml", "--connect", "--strict", cwd=tmp_path,
                 env=env).returncode == 0


def test_init_from_the_pg_environment_variables(tmp_path: Path, shop: TestDatabase, role: str) -> None:
    parts = urlsplit(shop.dsn)
    env = {"PGHOST": parts.hostname or "", "PGPORT": str(parts.port), "PGUSER": parts.username or "",
           "PGDATABASE": shop.name, "PGPASSWORD": PASSWORD}
    done = pgmcp("init", "--output-dir", "setup", "--role", role, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "setup" / "pgmcp.yaml").read_text()
    name = shop.name
    variable = name.upper() + "_DB_PASSWORD"
    assert f"  {name}:" in config and f"password: ${{{variable}}}" in config
    assert f'host: "{parts.hostname}"' in config and f"port: {parts.port}" in config and f'user: "{role}"' in config
    assert PASSWORD not in config + done.stdout + done.stderr
    # psql reads the same PG* variables: the printed command names no server.
    command = apply_line(done.stdout, "setup/pgmcp-role.sql")
    assert command.endswith("-f setup/pgmcp-role.sql"), command
    applied = run_printed(command, tmp_path, {**env, variable: "role-pw"})
    assert applied.returncode == 0, applied.stderr
    live = pgmcp("check-config", "--config", "setup/pgmcp.yaml", "--connect", "--strict", cwd=tmp_path,
                 env={"PGPASSWORD": "", variable: "role-pw"})
    assert live.returncode == 0, live.stdout + live.stderr
    assert "match nothing" not in live.stdout and "FAIL" not in live.stdout


@pytest.mark.parametrize("whose", ["superuser", "owner"])
def test_a_role_privileges_would_not_bind_is_refused(
    tmp_path: Path, shop: TestDatabase, role: str, whose: str
) -> None:
    if whose == "superuser":
        given = urlsplit(shop.dsn).username or ""
    else:
        given = role
        shop.run_sql(f"CREATE ROLE {role} LOGIN; ALTER TABLE hr.audit_secrets OWNER TO {role};")
    try:
        done = pgmcp("init", "--dsn", shop.dsn, "--role", given, cwd=tmp_path)
    finally:
        if whose == "owner":
            shop.run_sql("ALTER TABLE hr.audit_secrets OWNER TO CURRENT_USER")
    assert done.returncode == 2, done.stderr
    assert ("is a superuser" if whose == "superuser" else "owns hr.audit_secrets") in done.stderr
    assert "--role pgmcp_ro --login" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


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
    (tmp_path / "pgmcp-role.sql").write_text("-- mine\n")
    done = pgmcp("init", "--dsn", shop.dsn, "--database-name", "hr", cwd=tmp_path)
    assert done.returncode == 2 and "pgmcp-role.sql already exist(s)" in done.stderr and "--force" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["pgmcp-role.sql"]
    (tmp_path / "pgmcp-role.sql").unlink()
    (tmp_path / "pgmcp.yaml").write_text("# mine\n")
    # "n" on a real terminal (a process whose stdin is a pty) ...
    primary, secondary = os.openpty()
    os.write(primary, b"n\n")
    proc = subprocess.run([str(PGMCP), "init", "--dsn", shop.dsn, "--database-name", "hr"], cwd=tmp_path,
                          stdin=secondary, capture_output=True, timeout=120)
    os.close(secondary)
    os.close(primary)
    assert proc.returncode == 1, proc.stderr
    assert b"Overwrite? [y/N]" in proc.stdout
    assert (tmp_path / "pgmcp.yaml").read_text() == "# mine\n"
    # ... "y" in-process, through a stdin that says it is a terminal (the same prompt code path)
    confirmed = pgmcp("init", "--dsn", shop.dsn, "--database-name", "hr", cwd=tmp_path, stdin="y\n", terminal=True)
    assert confirmed.returncode == 0, confirmed.stderr
    assert "Overwrite? [y/N]" in confirmed.stdout
    assert (tmp_path / "pgmcp.yaml").read_text() != "# mine\n"
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
