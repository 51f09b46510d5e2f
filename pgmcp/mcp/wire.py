"""Rows on the wire: the JSON the executor wrote goes to the client as it is.

A tool result with rows carries them twice, as the MCP spec asks of structured content: in
`structuredContent.rows` and, fenced as data, in the text block (`pgmcp.mcp.calls`). The
executor has written the rows' JSON once (`pgmcp.db.result.RowsJson`). Handing them to the
SDK as Python values would cost a parse and then three passes of pydantic over every value
(the tool's output validation, the result's dump, the wire model's dump and JSON): about 3.4 s
of 4.7 s for 100,000 rows. So while the SDK handles a tool result, the rows are a token:

- `rows_token(rows_json)` (inside a tool call) registers the rows and returns a token that
  stands for them: `structuredContent.rows` is `[token]` and the text block holds the bare
  token where the rows' JSON goes. The token is 128 random bits, so no value a caller
  controls (SQL text, column names) can spell it.
- `defer_rows`, a server middleware around every `tools/call`, gets the SDK's wire dict back.
  On stdio (`RowsStdout` is the transport's stdout) it leaves the tokens for the writer;
  otherwise (streamable HTTP, in-process clients) it puts the rows in as Python values, once.
- `RowsStdout.write` splices the JSON into the line the SDK wrote: the array for
  `structuredContent.rows`, and for the text the same JSON with `<` escaped (the fence rule of
  `pgmcp.mcp.calls`) and JSON-string-escaped. It writes the line piece by piece as the pieces
  are made (`pgmcp.mcp.stdio`: by the event loop on a pipe, waiting whenever the client has
  not read yet; in a worker thread otherwise), so the client starts reading while the rest is
  being escaped, and no copy of the whole line is ever made.

Both paths say the same thing; tests/test_mcp_stdio.py compares them value for value.
"""

from __future__ import annotations

import contextvars
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from pgmcp.db.result import RowsJson

TOKEN_PREFIX = "@pgmcp-rows-"
# Where the tokens sit: `structuredContent.rows` is `[token]`, and in the text block's JSON the
# bare token is the value of "rows" (TEXT_KEY), escaped once more inside the line's JSON string.
STRUCTURED_KEY = '"rows":'
TEXT_KEY = '"rows":'
ESCAPED_TEXT_KEY = '\\"rows\\":'
ESCAPE_CHUNK = 1 << 20  # escape (and write) the text copy of the rows this many bytes at a time


class Output(Protocol):
    """Where the stdio transport's lines go (`pgmcp.mcp.stdio.PipeOut` or `ThreadOut`)."""

    async def write(self, pieces: Iterable[bytes | memoryview]) -> None: ...


@dataclass(frozen=True)
class _Rows:
    token: str
    rows_json: RowsJson


_pending: contextvars.ContextVar[list[_Rows] | None] = contextvars.ContextVar("pgmcp_rows", default=None)


def rows_token(rows_json: RowsJson) -> str | None:
    """A token standing for `rows_json` in a tool result (see the module docstring); None
    outside `defer_rows` (a tool called directly), where the caller puts the rows in itself."""
    pending = _pending.get()
    if pending is None:
        return None
    token = f"{TOKEN_PREFIX}{secrets.token_hex(16)}@"
    pending.append(_Rows(token, rows_json))
    return token


def text_rows(rows_json: RowsJson) -> str:
    """The rows as the text block shows them: their JSON with every `<` escaped."""
    return bytes(rows_json).decode("utf-8").replace("<", "\\u003c")


async def defer_rows(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    """Server middleware: the rows of a tool result travel as a token through the SDK."""
    if getattr(ctx, "method", None) != "tools/call":
        return await call_next(ctx)
    pending: list[_Rows] = []
    reset = _pending.set(pending)
    try:
        result = await call_next(ctx)
    finally:
        _pending.reset(reset)
    if not pending:
        return result
    writer = RowsStdout.active
    if writer is not None and isinstance(result, dict):
        writer.expect(pending)
        return result
    return fill(result, pending)


def fill(result: Any, pending: list[_Rows]) -> Any:
    """The wire dict `result` with each token replaced by its rows, as Python values."""
    if not isinstance(result, dict):
        return result
    structured = result.get("structuredContent")
    content = result.get("content")
    for rows in pending:
        if isinstance(structured, dict) and structured.get("rows") == [rows.token]:
            structured = {**structured, "rows": rows.rows_json.parse()}
        if isinstance(content, list):
            mark = TEXT_KEY + rows.token  # only where the tool put it: see RowsStdout._splice
            content = [
                {**block, "text": block["text"].replace(mark, TEXT_KEY + text_rows(rows.rows_json), 1)}
                if isinstance(block, dict) and isinstance(block.get("text"), str) and mark in block["text"]
                else block
                for block in content
            ]
    out = dict(result)
    if structured is not None:
        out["structuredContent"] = structured
    if content is not None:
        out["content"] = content
    return out


def _escaped(rows_json: RowsJson) -> Iterator[bytes]:
    """The text block's copy of the rows (JSON with `<` escaped), as it sits inside a JSON
    string: backslashes and quotes escaped (the executor's JSON holds no control characters;
    orjson escapes them inside strings). In pieces of about ESCAPE_CHUNK bytes."""
    yield b"["
    for index, chunk in enumerate(rows_json.chunks):
        if index:
            yield b","
        for start in range(0, len(chunk), ESCAPE_CHUNK):
            piece = bytes(chunk[start:start + ESCAPE_CHUNK])
            yield piece.replace(b"<", b"\\u003c").replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    yield b"]"


def _raw(rows_json: RowsJson) -> Iterator[bytes | memoryview]:
    yield b"["
    for index, chunk in enumerate(rows_json.chunks):
        if index:
            yield b","
        yield chunk
    yield b"]"


class RowsStdout:
    """The stdout of the stdio transport (`mcp.server.stdio.stdio_server(stdout=...)`): writes
    each line the SDK hands it to `out` (`pgmcp.mcp.stdio`: the pipe by the event loop, else a
    worker thread), with the rows spliced in where `defer_rows` left tokens."""

    active: RowsStdout | None = None

    def __init__(self, out: Output) -> None:
        self._out = out
        self._expected: dict[str, _Rows] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RowsStdout:
        RowsStdout.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        RowsStdout.active = None

    def expect(self, pending: list[_Rows]) -> None:
        with self._lock:
            self._expected.update((rows.token, rows) for rows in pending)

    async def write(self, line: str) -> None:
        await self._out.write(self.pieces(line))

    async def flush(self) -> None:
        """Each write flushes."""

    def pieces(self, line: str) -> Iterator[bytes | memoryview]:
        """What goes to the wire for `line`, in pieces (made as they are written)."""
        if self._expected and TOKEN_PREFIX in line:
            yield from self._splice(line)
        else:
            yield line.encode("utf-8")

    def _splice(self, line: str) -> Iterator[bytes | memoryview]:
        """`line` with every expected token replaced (see the module docstring): the one in
        `"rows":["token"]` by the rows' JSON, the one in the text block (`\\"rows\\":token`, its
        JSON escaped once more in the line) by the text's copy. Each must be there exactly once,
        else (a value spelling the token out, which no caller can know) the line is parsed and
        written again (`_whole`), where `fill` finds the places by their structure."""
        with self._lock:
            found = [rows for token, rows in self._expected.items() if token in line]
            for rows in found:
                del self._expected[rows.token]
        places: list[tuple[int, int, Iterator[bytes | memoryview]]] = []
        for rows in found:
            for key, mark, replacement in (
                (STRUCTURED_KEY, f'{STRUCTURED_KEY}["{rows.token}"]', _raw(rows.rows_json)),
                (ESCAPED_TEXT_KEY, ESCAPED_TEXT_KEY + rows.token, _escaped(rows.rows_json)),
            ):
                at = line.find(mark)
                if at < 0 or line.find(mark, at + 1) >= 0:
                    yield from self._whole(line, found)  # not as the tool wrote it: rebuild the line
                    return
                places.append((at + len(key), at + len(mark), replacement))
        places.sort(key=lambda place: place[0])
        done = 0
        for start, end, replacement in places:
            yield line[done:start].encode("utf-8")
            yield from replacement
            done = end
        yield line[done:].encode("utf-8")

    @staticmethod
    def _whole(line: str, found: list[_Rows]) -> Iterator[bytes]:
        message = orjson.loads(line)
        result = message.get("result")
        if isinstance(result, dict):
            message["result"] = fill(result, found)
        yield orjson.dumps(message) + (b"\n" if line.endswith("\n") else b"")
