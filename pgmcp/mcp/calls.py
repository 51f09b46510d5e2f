"""One MCP tool call: request id, error translation, metrics, one log line; untrusted results.

`tool_call` wraps every tool. Anything the caller can fix (a refusal, a timeout, an unknown
or dead database, a failing LLM) becomes a result with `isError` whose text starts with the
error code (`[query_timeout]`, `[policy_denied]` and the rule codes) and says what to change.
An unexpected failure is logged with its traceback and reported as an internal error. Either
way the server keeps serving.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import orjson
from loguru import logger
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel

from pgmcp.auth.principal import Principal, acting_as
from pgmcp.db.serialize import dumps
from pgmcp.errors import AccessDenied, DatabaseUnavailable, PgmcpError, PolicyDenied, QueryTimeout, RateLimited
from pgmcp.mcp import models, wire
from pgmcp.mcp.identity import principal_of
from pgmcp.mcp.sampling import SamplingRequired
from pgmcp.observe.audit import Caller, audit_scope
from pgmcp.observe.logs import request_scope
from pgmcp.observe.metrics import DB_QUERY_DURATION, POLICY_REFUSALS_TOTAL, REQUEST_DURATION, REQUESTS_TOTAL

P = ParamSpec("P")
# What a tool call answers: its result, or (protocol 2026-07-28) a request for the client's input.
ToolResult = CallToolResult | InputRequiredResult

# The database label when the request names no configured database: never the caller's text,
# which would let a client grow the metric's label set without bound.
UNKNOWN_DATABASE = "unknown"
# The tools whose calls are policy decisions, each written to the audit log (when configured).
AUDITED_TOOLS = frozenset({"query", "execute_sql", "check_sql"})
RESULT_OPEN = "<database-result>"
RESULT_CLOSE = "</database-result>"


def tool_call(
    resolve: Callable[[Any, str | None], str | None],
    admit: Callable[[Any], None] = lambda ctx: None,
) -> Callable[[Callable[P, Awaitable[BaseModel]]], Callable[P, Awaitable[ToolResult]]]:
    """Decorate a tool returning a typed model: `resolve(ctx, database_argument)` names the
    database for metrics; `admit(ctx)` lets the call in or raises (`[rate_limited]`,
    `[access_denied]` without a principal where authentication is required). The call runs as
    the principal of its bearer token (`pgmcp.mcp.identity`). The decorated tool returns the
    `CallToolResult` itself, so that its text (rows fenced as data; errors starting with their
    code) is exactly what pgmcp wrote, while the SDK still validates the structured content
    against the model. On protocol 2026-07-28 a call that needs the client's model first returns `InputRequiredResult`
    (`pgmcp.mcp.sampling`), and the client calls again with the answer."""

    def decorate(fn: Callable[P, Awaitable[BaseModel]]) -> Callable[P, Awaitable[ToolResult]]:
        tool = fn.__name__

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ToolResult:
            with request_scope() as rid, contextlib.ExitStack() as stack:
                named = kwargs.get("database")
                ctx = kwargs.get("ctx")
                principal = principal_of(ctx)
                stack.enter_context(acting_as(principal))
                database = resolve(ctx, named if isinstance(named, str) else None)
                database = database or UNKNOWN_DATABASE
                question = kwargs.get("question")
                caller = caller_of(ctx, principal)
                scope = stack.enter_context(audit_scope(
                    caller, tool, question if isinstance(question, str) else None
                )) if tool in AUDITED_TOOLS else None
                started = time.perf_counter()
                status, rows = "error", ""
                logger.debug("tool {} called", tool, stage="start", client=caller.client,
                             transport=caller.transport, principal=caller.principal)
                try:
                    admit(ctx)
                    out = await fn(*args, **kwargs)
                    status = "ok"
                    _observe_result(out)
                    if isinstance(out, models.QueryOut):
                        rows = f" rows={out.row_count}" if out.executed else ""
                        return untrusted_result(out)
                    return typed_result(out)
                except SamplingRequired as exc:
                    # Not an outcome: the client answers a sampling request and calls again.
                    status = "input_required"
                    if scope is not None:
                        scope.pause()
                    return exc.result
                except ToolError as exc:
                    return error_result(str(exc))
                except PolicyDenied as exc:
                    status = "refused"
                    if scope is not None:
                        scope.error_code = exc.code
                    for rule in _refusal_rules(exc):
                        POLICY_REFUSALS_TOTAL.labels(database=database, rule=rule).inc()
                    return error_result(refusal_text(exc))
                except PgmcpError as exc:
                    status = _status_of(exc)
                    if scope is not None:
                        scope.error_code = exc.code
                    return error_result(f"[{exc.code}] {exc}")
                except Exception:
                    status = "internal_error"
                    if scope is not None:
                        scope.error_code = status
                    logger.exception("internal error in tool {}", tool)
                    return error_result(
                        "[internal_error] pgmcp failed unexpectedly; the server log has the details "
                        f"(request id {rid}). The server is still serving."
                    )
                finally:
                    elapsed = time.perf_counter() - started
                    REQUESTS_TOTAL.labels(tool=tool, database=database, status=status).inc()
                    REQUEST_DURATION.labels(tool=tool).observe(elapsed)
                    logger.info(
                        "tool {} database={} status={}{} {:.1f}ms request_id={} principal={}",
                        tool, database, status, rows, elapsed * 1000, rid, caller.principal,
                    )

        return wrapper

    return decorate


def caller_of(ctx: Any, principal: Principal | None = None) -> Caller:
    """Who is calling: the client's name and version from its `initialize`, the transport (an
    HTTP request is attached to the request context on streamable HTTP, none on stdio), and
    the authenticated principal (None: the local user)."""
    name = principal.name if principal is not None else None
    try:
        context = ctx.request_context
        transport = "http" if context.request is not None else "stdio"
        params = context.session.client_params
    except Exception:  # no MCP context (direct calls in tests) or outside a request
        return Caller(principal=name)
    info = params.client_info if params is not None else None
    if info is None:
        return Caller("unknown", None, transport, name)
    return Caller(str(info.name), str(info.version) if info.version else None, transport, name)


def _status_of(exc: PgmcpError) -> str:
    if isinstance(exc, (RateLimited, AccessDenied)):
        return exc.code
    if isinstance(exc, QueryTimeout):
        return "timeout"
    if isinstance(exc, DatabaseUnavailable):
        return "unavailable"
    return "error"


def _observe_result(out: BaseModel) -> None:
    if isinstance(out, models.QueryOut) and out.executed and "execute" in out.timings_ms:
        DB_QUERY_DURATION.labels(database=out.database).observe(out.timings_ms["execute"] / 1000)


def _refusal_rules(exc: PolicyDenied) -> list[str]:
    if exc.verdict is None or not exc.verdict.violations:
        return ["unknown"]
    return sorted({v.rule for v in exc.verdict.violations})


def refusal_text(exc: PolicyDenied) -> str:
    """What a model reads when its SQL was refused: every rule code, where, and what to change."""
    verdict = exc.verdict
    if verdict is None or not verdict.violations:
        return f"[policy_denied] {exc}"
    lines = ["[policy_denied] The SQL was refused by the policy; nothing ran. Fix these and try again:"]
    for v in verdict.violations:
        where = f" (line {v.line}, column {v.column})" if v.line else ""
        lines.append(f"- {v.rule} {v.name}{where}: {v.message}")
    lines.append("Check a new version with check_sql before running it.")
    return "\n".join(lines)


def untrusted_result(out: models.QueryOut) -> CallToolResult:
    """The tool result for rows: structured content, plus text that fences the rows as data.

    Rows are written by whoever wrote them ("ignore your instructions and ..."), so the text a
    model reads says so before the data, and the data sits inside a fence it cannot close:
    every `<` in the JSON is escaped, so no value can spell the closing tag.

    The rows' JSON was written once by the executor (`out._rows_json`). Inside a tool call the
    result carries a token in its place, in `structuredContent.rows` and in the text, and the
    JSON goes to the client as it is (`pgmcp.mcp.wire`); called directly, the rows are parsed
    once here. Either way the text and the structured content say the same.
    """
    payload = out.model_dump(mode="json", exclude={"rows"})
    rows_json = out._rows_json
    token = wire.rows_token(rows_json) if rows_json is not None else None
    if token is not None:
        data = dumps({**payload, "rows": orjson.Fragment(token.encode("ascii"))})
        payload["rows"] = [token]
    elif rows_json is not None:
        data = dumps({**payload, "rows": orjson.Fragment(bytes(rows_json))})
        payload["rows"] = rows_json.parse()
    else:
        data = dumps({**payload, "rows": out.rows})
        payload["rows"] = out.rows
    data = data.replace("<", "\\u003c")
    text = f"{out.notice}\n{RESULT_OPEN}\n{data}\n{RESULT_CLOSE}"
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=payload)


def typed_result(out: BaseModel) -> CallToolResult:
    payload = out.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=dumps(payload))], structured_content=payload)


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


# The SDK reports arguments that fail the input schema as its own text: "Error executing tool
# <name>: <n> validation error(s) for <name>Arguments" and pydantic's listing. That is what a
# model must correct, so it is rewritten in pgmcp's form: code first, then field: problem.
_ARGUMENT_ERROR = re.compile(
    r"^Error executing tool (?P<tool>[\w.-]+): \d+ validation errors? for \w+\n(?P<body>.*)$", re.S
)


def argument_error_text(text: str) -> str | None:
    """pgmcp's wording of the SDK's argument-validation error `text`; None for other text."""
    found = _ARGUMENT_ERROR.match(text)
    if found is None:
        return None
    problems, field = [], "arguments"
    for line in found["body"].splitlines():
        if line and not line.startswith(" "):
            field = line.strip()
        elif line.startswith("  ") and not line.startswith("    "):
            problems.append(f"{field}: {line.strip().split(' [type=')[0]}")
    return (
        f"[invalid_arguments] {found['tool']}: {'; '.join(problems) or 'invalid arguments'}. "
        "Call the tool again with arguments that match its input schema."
    )


async def clean_argument_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: give argument-validation errors of tool calls pgmcp's wording.

    It sees the result as the wire dict the SDK built, and changes only the text.
    """
    result = await call_next(ctx)
    if ctx.method != "tools/call" or not isinstance(result, dict) or not result.get("isError"):
        return result
    content = result.get("content")
    if isinstance(content, list) and len(content) == 1 and content[0].get("type") == "text":
        better = argument_error_text(str(content[0].get("text", "")))
        if better is not None:
            logger.info("tool {} rejected its arguments", (ctx.params or {}).get("name"))
            return {**result, "content": [{**content[0], "text": better}]}
    return result
