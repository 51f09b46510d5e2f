"""Config loading: every refusal in tests/cases/config_errors.yaml, and what loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgmcp.config.loader import find_config_path, load_config
from pgmcp.config.model import Secret
from pgmcp.documents.durations import parse_duration
from pgmcp.documents.resources import shipped_policy_path
from pgmcp.errors import ConfigError, SourceLocation
from tests.casefiles import load_cases

REPO = Path(__file__).resolve().parent.parent
CASES_FILE = Path(__file__).parent / "cases" / "config_errors.yaml"
CASE_KEYS = {"id", "document", "env", "files", "error", "absent", "line", "key_path"}


def _cases() -> list[dict[str, Any]]:
    return load_cases(CASES_FILE, CASE_KEYS)


def test_enough_cases() -> None:
    assert len(_cases()) >= 15


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_config_error(case: dict[str, Any], tmp_path: Path) -> None:
    for name, text in case.get("files", {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "pgmcp.yaml"
    path.write_text(case["document"], encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=case.get("env", {}))
    error = caught.value
    text = str(error)
    for expected in case["error"]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    for hidden in case.get("absent", []):
        assert hidden not in text
    assert error.location.file == str(path)
    assert error.location.line == case["line"], text
    assert error.location.key_path == case["key_path"], text
    assert error.hint is None or error.hint.strip()
    assert error.code == "invalid_config"


def test_example_config_loads() -> None:
    example = REPO / "config.example.yaml"
    assert example.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=schemas/config.schema.json\n"
    )
    config = load_config(example, environ={})
    shop = config.database("shop")
    assert shop is not None
    assert shop.dsn == "postgresql://pgmcp_ro@localhost:5432/shop"
    assert shop.password == Secret("")
    assert shop.description == "Orders and customers of the web shop"
    assert shop.policies == (str(REPO / "policies" / "shop-analyst.yaml"),)
    assert shop.source == SourceLocation(str(example), 3, 3, "databases.shop")
    assert config.llm.provider == "openai"
    assert config.llm.model == "gpt-4.1-mini"
    assert not config.llm.api_key
    assert config.llm.base_url is None
    assert config.llm.timeout == 30.0
    assert config.schema_cache.ttl == 600.0
    assert config.limits.max_rows == 1000
    assert config.limits.statement_timeout == 5.0
    assert (config.logging.level, config.logging.format) == ("INFO", "text")


def test_env_expansion_and_types(tmp_path: Path) -> None:
    path = tmp_path / "pgmcp.yaml"
    path.write_text(
        "databases:\n"
        "  wh:\n"
        "    host: ${PGMCP_T_HOST:-db.internal}\n"
        "    port: ${PGMCP_T_PORT:-5432}\n"
        "    user: ro\n"
        "    dbname: wh_${PGMCP_T_SUFFIX}\n"
        "    password: ${PGMCP_T_PW}\n"
        "    description: costs $$5 ${PGMCP_T_EMPTY:-per} month $ plain\n"
        "    pgbouncer: ${PGMCP_T_BOUNCER:-false}\n"
        "llm:\n"
        "  provider: ${PGMCP_T_PROVIDER}\n"
        "  timeout: ${PGMCP_T_TIMEOUT:-45}\n",
        encoding="utf-8",
    )
    env = {
        "PGMCP_T_PORT": "6432",
        "PGMCP_T_SUFFIX": "eu",
        "PGMCP_T_PW": "0123",  # digits only: must stay text, the schema wants a string
        "PGMCP_T_EMPTY": "",  # empty counts as unset for :-
        "PGMCP_T_BOUNCER": "true",
        "PGMCP_T_PROVIDER": "anthropic",
    }
    config = load_config(path, environ=env)
    wh = config.databases[0]
    assert (wh.host, wh.port, wh.dbname) == ("db.internal", 6432, "wh_eu")
    assert wh.password.value == "0123"
    assert wh.description == "costs $5 per month $ plain"
    assert wh.pgbouncer is True
    assert wh.policies == (str(shipped_policy_path("baseline")),)
    assert config.llm.provider == "anthropic"
    assert config.llm.timeout == 45.0
    assert config.llm.provider != "client"


def test_commands_that_need_no_secrets_load_without_them(tmp_path: Path) -> None:
    path = tmp_path / "pgmcp.yaml"
    path.write_text(
        "databases:\n  hr:\n    host: db\n    password: ${PGMCP_T_PW}\n"
        "llm:\n  provider: anthropic\n  api_key: ${PGMCP_T_KEY}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="PGMCP_T_PW is not set"):
        load_config(path, environ={})
    config = load_config(path, environ={}, need_secrets=False)
    assert config.databases[0].password.value == "" and config.llm.api_key.value == ""
    assert config.unset_secrets == (
        "PGMCP_T_PW (at databases.hr.password)", "PGMCP_T_KEY (at llm.api_key)"
    )
    # Only secrets may be missing: a variable for anything else is still needed.
    path.write_text("databases:\n  hr:\n    host: ${PGMCP_T_HOST}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="PGMCP_T_HOST is not set"):
        load_config(path, environ={}, need_secrets=False)


def test_llm_absent_means_client(tmp_path: Path) -> None:
    path = tmp_path / "pgmcp.yaml"
    path.write_text("databases:\n  a: {dsn: 'postgresql://u@h/a'}\n", encoding="utf-8")
    config = load_config(path, environ={})
    assert config.llm.provider == "client"
    assert config.databases[0].policies == (str(shipped_policy_path("baseline")),)


def test_secrets_are_split_and_hidden(tmp_path: Path) -> None:
    path = tmp_path / "pgmcp.yaml"
    path.write_text(
        "databases:\n"
        "  a: {dsn: 'postgresql://alice:p%40ss-W0rd@db:5433/a?sslmode=require&password=ignored'}\n"
        "  b: {dsn: 'postgresql://bob@db/b?password=qs-Secret9', policies: [permissive, ./own.yaml]}\n"
        "llm: {provider: openai, api_key: sk-TopSecretKey}\n",
        encoding="utf-8",
    )
    (tmp_path / "own.yaml").write_text("name: own\n", encoding="utf-8")
    config = load_config(path, environ={})
    a, b = config.databases
    # The query-string password is the later one and wins; both are gone from the DSN.
    assert a.dsn == "postgresql://alice@db:5433/a?sslmode=require"
    assert a.password.value == "ignored"
    assert b.dsn == "postgresql://bob@db/b"
    assert b.password.value == "qs-Secret9"
    assert b.policies == (str(shipped_policy_path("permissive")), str(tmp_path / "own.yaml"))
    assert config.llm.api_key.value == "sk-TopSecretKey"
    for shown in (repr(config), str(config), repr(a), str(config.llm)):
        for secret in ("p%40ss-W0rd", "p@ss-W0rd", "ignored", "qs-Secret9", "sk-TopSecretKey"):
            assert secret not in shown


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        (2, 2.0),
        ("1.5", 1.5),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text, SourceLocation("x")) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-1s", "0s", True, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text, SourceLocation("x", 3, 1, "limits.statement_timeout"))


def test_find_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("databases: {}\n", encoding="utf-8")
    from_env = tmp_path / "env.yaml"
    from_env.write_text("databases: {}\n", encoding="utf-8")
    assert find_config_path(str(explicit), {"PGMCP_CONFIG": str(from_env)}) == explicit
    assert find_config_path(None, {"PGMCP_CONFIG": str(from_env)}) == from_env
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"pgmcp.yaml \(from the default\) does not exist") as caught:
        find_config_path(None, {})
    assert "--config FILE, set PGMCP_CONFIG" in str(caught.value)
    (tmp_path / "pgmcp.yaml").write_text("databases: {}\n", encoding="utf-8")
    assert find_config_path(None, {}) == Path("pgmcp.yaml")
    with pytest.raises(ConfigError, match="from --config"):
        find_config_path(str(tmp_path / "missing.yaml"), {})


def test_several_problems_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "pgmcp.yaml"
    path.write_text(
        "databases:\n  a: {dsn: 'postgresql://u@h/a'}\nlimits:\n  max_rows: many\nlogging:\n  level: LOUD\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert "1 more problem(s)" in text
    # Whichever is reported first, the other is named with its line.
    assert ("limits.max_rows (line 4)" in text) != ("logging.level (line 6)" in text)
