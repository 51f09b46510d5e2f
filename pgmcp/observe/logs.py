"""Logging: loguru to stderr (never stdout: stdout is the MCP stdio channel), text or JSON lines.

- `setup_logging(config)` installs the one sink and routes the stdlib `logging` (sqlglot, mcp,
  httpx, asyncpg, the LLM SDKs, ...) into loguru, so nothing else writes to the terminal.
- `request_scope()` gives every log line of a request the same `request_id`.
- Every line is redacted (`pgmcp.observe.redact`) after formatting, tracebacks included, so a secret
  cannot leak through a message, an `extra` value or an exception's text.
- `audit(event)` appends one JSON line per decision to `logging.audit_file` when configured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from pgmcp.config.model import LoggingConfig
from pgmcp.observe.redact import redact, redact_data

if TYPE_CHECKING:
    from loguru import Message, Record

# Loggers of the libraries pgmcp uses; they are reset to propagate to the root handler, which
# forwards to loguru (some libraries attach their own stream handlers).
FORWARDED_LOGGERS = (
    "sqlglot", "mcp", "httpx", "httpcore", "asyncpg", "anthropic", "openai", "uvicorn",
    "uvicorn.access", "uvicorn.error", "starlette", "sse_starlette", "asyncio",
)
# loguru appends "\n{exception}" to a string format itself.
TEXT_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[_rid]} | {name}:{line} | {message}{extra[_extras]}"
)

_request_id: ContextVar[str | None] = ContextVar("pgmcp_request_id", default=None)
_audit_path: Path | None = None
_audit_lock = threading.Lock()


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _request_id.get()


@contextlib.contextmanager
def request_scope(request_id: str | None = None) -> Iterator[str]:
    """Run a block as one request: every log line (and audit line) inside it carries its id.

    Uses a context variable, so the id follows `await` and tasks created inside the block.
    """
    rid = request_id or new_request_id()
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


def _patch(record: Record) -> None:
    extra = record["extra"]
    extra.setdefault("request_id", _request_id.get())
    # Redact at the source too, so sinks added by others (e.g. tests) see no secrets either.
    record["message"] = redact(record["message"])
    for key, value in list(extra.items()):
        extra[key] = redact_data(value)
    shown = {k: v for k, v in extra.items() if k != "request_id" and not k.startswith("_")}
    extra["_rid"] = extra["request_id"] or "-"
    extra["_extras"] = " " + json.dumps(shown, default=str, ensure_ascii=False) if shown else ""


def _json_line(record: Record) -> str:
    exc = record["exception"]
    entry: dict[str, Any] = {
        "time": record["time"].astimezone(UTC).isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "request_id": record["extra"].get("request_id"),
        "logger": record["name"],
        "function": record["function"],
        "line": record["line"],
        "extra": {k: v for k, v in record["extra"].items() if k != "request_id" and not k.startswith("_")},
    }
    if exc is not None and exc.type is not None:
        entry["exception"] = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
    return json.dumps(redact_data(entry), default=lambda v: redact(str(v)), ensure_ascii=False) + "\n"


class _Sink:
    """Writes formatted lines to a stream, redacted; `stream=None` means the current sys.stderr."""

    def __init__(self, stream: TextIO | None, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json

    def __call__(self, message: Message) -> None:
        # The message and the extras were redacted when the record was made (_patch); what the
        # format adds besides is time, level, logger name and line, and a traceback: only a
        # line with a traceback needs another pass.
        if self.as_json:
            text = _json_line(message.record)
        else:
            text = redact(str(message)) if message.record["exception"] is not None else str(message)
        out = self.stream if self.stream is not None else sys.stderr
        out.write(text)
        out.flush()


class InterceptHandler(logging.Handler):
    """Forwards stdlib `logging` records to loguru, keeping the original logger name and line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno

        def origin(r: Record) -> None:
            r["name"], r["function"], r["line"] = record.name, record.funcName, record.lineno

        logger.patch(origin).opt(exception=record.exc_info).log(level, record.getMessage())


def setup_logging(config: LoggingConfig, *, stream: TextIO | None = None) -> None:
    """Configure loguru (one stderr sink, text or JSON, level from the config) and stdlib logging.

    Idempotent: calling it again replaces the previous setup. `stream` defaults to the current
    `sys.stderr`; stdout is never written to.
    """
    global _audit_path
    logger.remove()
    logger.configure(patcher=_patch)
    logger.add(
        _Sink(stream, config.format == "json"),
        level=config.level,
        format=TEXT_FORMAT,
        # diagnose would print local variables (possibly secrets) into tracebacks.
        backtrace=False,
        diagnose=False,
        colorize=False,
    )
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in FORWARDED_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers = []
        lib.propagate = True
        lib.setLevel(logging.NOTSET)
    _audit_path = Path(config.audit_file) if config.audit_file else None


def audit_enabled() -> bool:
    """Whether `logging.audit_file` is configured (so decisions are worth collecting)."""
    return _audit_path is not None


def audit(event: dict[str, Any]) -> None:
    """Append one decision to the audit log (a JSON line), if `logging.audit_file` is configured.

    `pgmcp.observe.audit` builds the events (who asked, database, SQL given and run, verdict, outcome).
    The timestamp and the current request id are added; every string is redacted.
    """
    path = _audit_path
    if path is None:
        return
    entry: dict[str, Any] = {"time": datetime.now(UTC).isoformat(), "request_id": current_request_id()}
    entry.update(event)
    line = json.dumps(redact_data(entry), default=lambda v: redact(str(v)), ensure_ascii=False)
    with _audit_lock, path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
