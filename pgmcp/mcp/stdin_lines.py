"""stdin's lines, read by the event loop from a pipe (`pgmcp.mcp.stdio` decides when).

Lines are handed over as the MCP SDK's stdio reader hands them (text, newline kept,
undecodable bytes replaced, the last line without one too). A line longer than `MAX_LINE`
bytes is dropped as it arrives (it is never held whole) and an empty line stands in its place:
the SDK answers that as a message it cannot parse, and serving goes on. While more than
`QUEUED_BYTES` of lines wait for the server, the pipe is not read.
"""

from __future__ import annotations

import asyncio
import collections
import os

from loguru import logger

MAX_LINE = 64 * 1024 * 1024  # a request larger than this is not a question about a database
QUEUED_BYTES = 4 * 1024 * 1024  # stop reading stdin while this much is waiting for the server


class StdinLines(asyncio.Protocol):
    """The lines of a pipe, as `async for` hands them to the SDK's stdio reader: split as they
    arrive, the pipe paused while too much waits to be taken (`open` connects it)."""

    def __init__(self) -> None:
        self._lines: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._closed = False
        self._paused = False
        self._transport: asyncio.ReadTransport | None = None
        self._partial = bytearray()
        self._dropping = False
        self._waiter: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, fd: int) -> StdinLines:
        lines = cls()
        await asyncio.get_running_loop().connect_read_pipe(lambda: lines, os.fdopen(os.dup(fd), "rb", buffering=0))
        return lines

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- the pipe's side (asyncio.Protocol) -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._dropping:
                self._dropping = False
                self._push(b"\n")
            elif self._partial:
                self._partial += data[start:end + 1]
                self._push(bytes(self._partial))
                self._partial.clear()
            else:
                self._push(data[start:end + 1])
            start = end + 1
        if start < len(data) and not self._dropping:
            self._partial += data[start:]
            if len(self._partial) > MAX_LINE:
                logger.warning("stdin: a message longer than {} bytes was dropped", MAX_LINE)
                self._partial.clear()
                self._dropping = True
        if self._queued > QUEUED_BYTES and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _end(self) -> None:
        """The last line needs no newline (as a file's `readline` hands it)."""
        if self._partial and not self._dropping:
            self._push(bytes(self._partial))
        self._partial.clear()
        self._closed = True
        self._wake()

    def _push(self, line: bytes) -> None:
        self._lines.append(line)
        self._queued += len(line)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the reader's side ------------------------------------------------------------------

    def __aiter__(self) -> StdinLines:
        return self

    async def __anext__(self) -> str:
        while not self._lines:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        line = self._lines.popleft()
        self._queued -= len(line)
        if self._paused and self._queued <= QUEUED_BYTES // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return line.decode("utf-8", "replace")
