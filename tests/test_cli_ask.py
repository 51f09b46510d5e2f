"""`pgmcp ask` end to end: a real config file, the sample shop on the test PostgreSQL, the demo
policy, and the real OpenAI SDK talking to the fake vendor on 127.0.0.1. Checks what the command
prints and its exit code, in-process through the console script's entry point
(tests/cli_inprocess.py); the installed script itself runs `pgmcp ask` in
tests/test_redaction_session.py (a real process, whose whole output must hold no secret)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pgmcp.demo.sample_data import DEMO_ROLE
from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase
from tests.fakes.llm_server import FakeLLMServer, text

PASSWORD = "ask-test-password"
GOOD_SQL = "SELECT status, count(*) AS orders FROM orders GROUP BY status ORDER BY status"
REFUSED_SQL = "SELECT name, email FROM customers"


@pytest.fixture(scope="module")
def shop(sample_db: TestDatabase) -> TestDatabase:
    sample_db.run_sql(f"ALTER ROLE {DEMO_ROLE} PASSWORD '{PASSWORD}'")
    return sample_db


def write_config(path: Path, shop: TestDatabase, fake: FakeLLMServer, provider: str = "openai") -> Path:
    dsn = re.sub(r"//[^@/]*@", f"//{DEMO_ROLE}@", shop.dsn)
    path.write_text(
        "databases:\n"
        "  shop:\n"
        f"    dsn: {dsn}\n"
        f"    password: {PASSWORD}\n"
        "    policies: [demo]\n"
        "llm:\n"
        f"  provider: {provider}\n"
        "  api_key: test-key\n"
        f"  base_url: {fake.openai_url}\n"
        "  timeout: 10s\n"
        "  max_retries: 0\n"
    )
    return path


def ask(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """In-process (tests/cli_inprocess.py), without the developer's own OPENAI_/ANTHROPIC_/PGMCP_
    settings."""
    return run_pgmcp("ask", *args, cwd=cwd, clean=True)


def table_rows(stdout: str) -> list[list[str]]:
    """The data rows of the printed table (after the header rule)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"[-+]+", line))
    return [[c.strip() for c in line.split(" | ")] for line in lines[start + 1:] if " | " in line]


def test_ask_prints_sql_verdict_and_rows(shop: TestDatabase, fake: FakeLLMServer, tmp_path: Path) -> None:
    fake.script(text(f"```sql\n{GOOD_SQL}\n```"))
    config = write_config(tmp_path / "pgmcp.yaml", shop, fake)
    proc = ask("--config", str(config), "How many orders are there per status?", cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Database: shop" in out
    assert f"SQL:\n  {GOOD_SQL}\n" in out
    assert "Verdict: allowed" in out
    # The demo policy's row filter is part of what ran.
    assert "_pgmcp_rf" in out.split("Runs as:", 1)[1]
    expected = [
        line.split("|") for line in shop.run_sql(
            "SELECT status, count(*) FROM orders WHERE tenant_id = 1 GROUP BY status ORDER BY status"
        ).split()
    ]
    assert table_rows(out) == expected
    assert f"({len(expected)} rows)" in out
    # The model saw the question and only the visible schema.
    prompt = str(fake.requests[0].body)
    assert "How many orders are there per status?" in prompt
    assert "email" not in prompt


def test_audit_line_carries_the_request_id_of_the_logs(
    shop: TestDatabase, fake: FakeLLMServer, tmp_path: Path
) -> None:
    fake.script(text(GOOD_SQL))
    config = write_config(tmp_path / "pgmcp.yaml", shop, fake)
    with config.open("a") as f:
        f.write("logging: {level: INFO, format: json, audit_file: audit.jsonl}\n")
    proc = ask("--config", str(config), "-v", "per status?", cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    logged = {json.loads(line)["request_id"] for line in proc.stderr.splitlines() if line.startswith("{")}
    (audit,) = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit["tool"] == "ask" and audit["request_id"] is not None
    assert audit["request_id"] in logged


def test_sql_only_does_not_run(shop: TestDatabase, fake: FakeLLMServer, tmp_path: Path) -> None:
    fake.script(text(GOOD_SQL))
    config = write_config(tmp_path / "pgmcp.yaml", shop, fake)
    proc = ask("--config", str(config), "--database", "shop", "--sql-only", "per status?", cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert "Verdict: allowed" in proc.stdout
    assert " | " not in proc.stdout  # no table


def test_refused_every_time_exits_1_with_the_rule(
    shop: TestDatabase, fake: FakeLLMServer, tmp_path: Path
) -> None:
    fake.default = text(REFUSED_SQL)
    config = write_config(tmp_path / "pgmcp.yaml", shop, fake)
    proc = ask("--config", str(config), "What are the customers' e-mail addresses?", cwd=tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refused: no acceptable SQL after 3 attempt(s)" in proc.stderr
    assert "PGM301" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(fake.requests) == 3  # llm.attempts, each told why the last one was refused
    assert "PGM301" in str(fake.requests[1].body)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("client", "pgmcp ask needs a model of its own"),
        ("missing", "does not exist"),
        ("unknown-db", "unknown database 'nope'"),
    ],
)
def test_usage_and_config_errors_exit_2(
    setup: str, message: str, shop: TestDatabase, fake: FakeLLMServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "pgmcp.yaml", shop, fake, "client" if setup == "client" else "openai")
    args = ["--config", str(tmp_path / "absent.yaml" if setup == "missing" else config)]
    if setup == "unknown-db":
        args += ["--database", "nope"]
    proc = ask(*args, "anything?", cwd=tmp_path)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fake.requests == []
