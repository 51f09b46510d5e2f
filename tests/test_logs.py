"""Logging: stderr only, text or JSON lines, request ids, stdlib routing, audit file, and no
secret ever reaching the output (messages, extras, DSNs, tracebacks)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import pytest
from loguru import logger

from pgmcp.config.model import Config, DatabaseConfig, LLMConfig, LoggingConfig, Secret
from pgmcp.observe.logs import audit, current_request_id, request_scope, setup_logging
from pgmcp.observe.redact import redact, register_secret, register_secrets_in

# (text, what must be gone, what must remain)
REDACTION_CASES = [
    ("postgresql://app:Sup3r-s3cret@db:5432/shop", "Sup3r-s3cret", "postgresql://app:***@db:5432/shop"),
    ("postgres://app:p@ss:w0rd@db/shop", "p@ss:w0rd", "postgres://app:***@db/shop"),
    ("host=db user=app password=Sup3r-s3cret dbname=shop", "Sup3r-s3cret", "password=*** dbname=shop"),
    ("host=db password='with space' dbname=shop", "with space", "password='***' dbname=shop"),
    ('{"api_key": "abc123def456"}', "abc123def456", '{"api_key": "***"}'),
    ("PGPASSWORD=hunter22 psql", "hunter22", "PGPASSWORD=*** psql"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "eyJhbGciOiJIUzI1NiJ9", "Bearer ***"),
    ("key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv_wx", "AbCdEfGhIjKlMnOpQrStUv", "key ***"),
    ("key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQrStUvWx", "key ***"),
    ("x-api-key: abcdefgh12345678", "abcdefgh12345678", "x-api-key: ***"),
    ("db.password=Sup3r-s3cret", "Sup3r-s3cret", "db.password=***"),
    ('{"db.password": "Sup3r-s3cret"}', "Sup3r-s3cret", '{"db.password": "***"}'),
    ("password: hunter22 and more", "hunter22", "password: *** and more"),
    ("{password: hunter22}", "hunter22", "{password: ***}"),
    # Things that are not secrets stay as they are.
    # Messages about a secret's variable and where it goes (issue 16: they came out garbled).
    ("pgmcp.yaml:7:5 at databases.hr.password: environment variable HR_DB_PASSWORD is not set",
     "", "at databases.hr.password: environment variable HR_DB_PASSWORD is not set"),
    ("give a default: ${HR_DB_PASSWORD:-value}", "", "${HR_DB_PASSWORD:-value}"),
    ("password: ${HR_DB_PASSWORD}", "", "password: ${HR_DB_PASSWORD}"),
    ("at llm.api_key: unknown key 'api_key'", "", "at llm.api_key: unknown key 'api_key'"),
    ("postgresql://app@db/shop", "", "postgresql://app@db/shop"),
    ("http://127.0.0.1:8080/metrics", "", "http://127.0.0.1:8080/metrics"),
    ("input_tokens=120 output_tokens=30", "", "input_tokens=120 output_tokens=30"),
]


@pytest.mark.parametrize(("text", "gone", "kept"), REDACTION_CASES)
def test_redaction_patterns(text: str, gone: str, kept: str) -> None:
    out = redact(text)
    if gone:
        assert gone not in out
    assert kept in out


def test_registered_secret_is_masked_also_when_escaped() -> None:
    secret = f"pw/{uuid.uuid4().hex}@x\"y"
    register_secret(secret)
    for shown in (secret, quote(secret, safe=""), json.dumps(secret)):
        assert secret not in redact(f"value {shown} end")
        assert quote(secret, safe="") not in redact(f"value {shown} end")
        assert "***" in redact(f"value {shown} end")


def test_every_secret_of_a_config_is_registered() -> None:
    password, key = "pw-" + uuid.uuid4().hex, "key-" + uuid.uuid4().hex
    config = Config(
        path=None,
        databases=(DatabaseConfig(name="shop", dsn="postgresql://app@db/shop", password=Secret(password)),),
        llm=LLMConfig(provider="openai", api_key=Secret(key)),
    )
    register_secrets_in(config)
    assert redact(f"using {password}, calling with {key}") == "using ***, calling with ***"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def _secret() -> str:
    secret = "s3cret-" + uuid.uuid4().hex
    register_secret(secret)
    return secret


def _log_everything(secret: str) -> None:
    """Secrets through every path: message, extra, DSN, stdlib, exception text and chain."""
    logger.debug("connecting to postgresql://app:{}@db/shop", "unregistered-pw-123")
    logger.info("using key " + secret, api_key=secret, nested={"dsn": f"host=db password={secret}"})
    logging.getLogger("asyncpg").warning("connect failed for dsn postgresql://u:%s@h/db", secret)
    try:
        try:
            raise ConnectionError(f"could not connect: password={secret}")
        except ConnectionError as exc:
            raise RuntimeError(f"database unavailable ({secret})") from exc
    except RuntimeError:
        logger.exception("request failed")
    try:
        raise ValueError(secret)
    except ValueError:
        logging.getLogger("mcp").exception("tool failed")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_in_output(
    fmt: Literal["text", "json"], restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _secret()
    setup_logging(LoggingConfig(level="DEBUG", format=fmt))  # default stream: sys.stderr
    with request_scope():
        _log_everything(secret)
    out, err = capsys.readouterr()
    assert out == ""  # stdout is the MCP channel
    assert secret not in err
    assert "unregistered-pw-123" not in err
    assert "RuntimeError: database unavailable (***)" in err.replace("\\n", "\n")
    assert "ConnectionError" in err  # the chain is there, redacted
    assert "connect failed for dsn postgresql://u:***@h/db" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert len(lines) == 5
        assert lines[1]["extra"] == {"api_key": "***", "nested": {"dsn": "host=db password=***"}}
        assert "exception" in lines[3] and "exception" in lines[4]


def test_json_lines_carry_the_request_id(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(level="INFO", format="json"), stream=stream)

    async def stage(name: str) -> None:
        await asyncio.sleep(0)
        logger.info("stage {}", name)
        logging.getLogger("sqlglot").warning("parser note in %s", name)

    async def serve(rid: str) -> None:
        with request_scope(rid):
            assert current_request_id() == rid
            await asyncio.gather(stage("policy"), stage("execute"))

    async def main() -> None:
        await asyncio.gather(serve("req-a"), serve("req-b"))

    asyncio.run(main())
    logger.info("between requests")
    assert current_request_id() is None
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_rid: dict[str | None, int] = {}
    for line in lines:
        by_rid[line["request_id"]] = by_rid.get(line["request_id"], 0) + 1
        assert set(line) >= {"time", "level", "message", "request_id", "logger"}
    assert by_rid == {"req-a": 4, "req-b": 4, None: 1}
    assert {line["logger"] for line in lines if "parser note" in line["message"]} == {"sqlglot"}


def test_text_format_and_level(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(level="WARNING", format="text"), stream=stream)
    with request_scope() as rid:
        logger.info("hidden")
        logging.getLogger("httpx").info("hidden too")
        logger.warning("shown", database="shop")
    text = stream.getvalue()
    assert "hidden" not in text
    assert f"| WARNING | {rid} |" in text
    assert 'shown {"database": "shop"}' in text
    assert len(rid) == 12  # generated when not given


def test_audit_file(restore_logging: None, tmp_path: Path) -> None:
    secret = _secret()
    path = tmp_path / "audit.jsonl"
    setup_logging(LoggingConfig(audit_file=str(path)), stream=io.StringIO())
    with request_scope("req-1"):
        audit({"who": "claude-desktop", "database": "shop", "sql": "SELECT id FROM customers",
               "allowed": True, "rules": [], "reason": ""})
        audit({"who": "claude-desktop", "database": "shop", "sql": f"SELECT '{secret}'",
               "allowed": False, "rules": ["PGM301"], "reason": "column-denied: customers.email"})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["allowed"] for line in lines] == [True, False]
    assert all(line["request_id"] == "req-1" and line["time"] for line in lines)
    assert lines[1]["rules"] == ["PGM301"]
    assert secret not in path.read_text()


def test_audit_is_a_no_op_without_a_file(restore_logging: None, tmp_path: Path) -> None:
    setup_logging(LoggingConfig(), stream=io.StringIO())
    audit({"who": "x", "sql": "SELECT 1", "allowed": True})
    assert list(tmp_path.iterdir()) == []
