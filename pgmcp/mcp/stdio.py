"""stdin and stdout of the stdio transport, read and written by the event loop.

The MCP SDK's `stdio_server` reads stdin with `anyio.wrap_file`: a worker thread hand-off for
every line read, and another for every message written. On a one-row call that is two thread
wake-ups and about 0.1-0.2 ms of CPU on this project's machine class (docs/benchmarks.md). When
stdin and stdout are pipes or sockets, as an MCP host starts a server, pgmcp reads and writes
them with asyncio's pipe transports instead and hands the SDK's `stdio_server` these two ends
(it takes explicit streams); on a terminal or a file (a non-blocking flag there would reach
other processes sharing it; epoll cannot watch a file) the SDK's own way runs.

Like the SDK (mcp.server.stdio), `claim_fd` points the standard descriptor away from the wire
while serving (fd 0 at the null device, fd 1 at stderr), so a library or a child process that
reads stdin gets EOF and stray output cannot corrupt the protocol; the wire is a private
duplicate, and the descriptors are restored on exit.

stdin's lines: `pgmcp.mcp.stdin_lines`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import BinaryIO

import anyio
import anyio.to_thread

from pgmcp.mcp.stdin_lines import StdinLines

WRITE_SLICE = 64 * 1024  # stdout is written in slices of at most this many bytes ...
HIGH_WATER = 256 * 1024  # ... and a writer waits once this much is buffered
CLOSE_WAIT = 5.0  # seconds to let the client read what is left when serving ends


def pollable(fd: int) -> bool:
    """A pipe or a socket: the event loop can watch it, and its non-blocking flag is ours."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def claim_fd(fd: int, divert: Callable[[], int]) -> tuple[int, Callable[[], None]] | None:
    """A private duplicate of `fd` for the wire, with `fd` pointed at `divert()`; and what puts
    `fd` back. None when it cannot be done (the caller then uses `fd` in place)."""
    try:
        private = os.dup(fd)
    except OSError:
        return None
    try:
        target = divert()
    except OSError:
        os.close(private)
        return None
    try:
        os.dup2(target, fd)
    except OSError:
        os.close(private)
        return None
    finally:
        if target != fd:
            os.close(target)

    def restore() -> None:
        try:
            os.dup2(private, fd)
        finally:
            os.close(private)

    return private, restore


def blocking_again(fd: int, restore: Callable[[], None]) -> Callable[[], None]:
    """`restore`, after taking back the non-blocking flag the event loop set on `fd`'s open file
    description, which the process that started pgmcp may share (a shell's pipe)."""

    def undo() -> None:
        with contextlib.suppress(OSError):
            os.set_blocking(fd, True)
        restore()

    return undo


def to_devnull() -> int:
    return os.open(os.devnull, os.O_RDONLY)


def to_stderr() -> int:
    return os.dup(2)


class _Flow(asyncio.Protocol):
    """Write-side flow control: `drained` is set while the pipe takes what is written, `gone`
    once it is closed."""

    def __init__(self) -> None:
        self.drained = asyncio.Event()
        self.drained.set()
        self.gone = asyncio.Event()

    def pause_writing(self) -> None:
        self.drained.clear()

    def resume_writing(self) -> None:
        self.drained.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.drained.set()
        self.gone.set()


class PipeOut:
    """stdout written by the event loop: each piece goes to the pipe at once when it takes it,
    in slices of WRITE_SLICE bytes, and a writer waits while more than HIGH_WATER bytes are
    buffered (a client that reads slowly). So at most a slice or two of an answer is copied
    into the buffer: a large answer is never held twice."""

    def __init__(self, transport: asyncio.WriteTransport, flow: _Flow) -> None:
        self._transport, self._flow = transport, flow

    @classmethod
    async def open(cls, fd: int) -> PipeOut:
        loop = asyncio.get_running_loop()
        flow = _Flow()
        transport, _ = await loop.connect_write_pipe(lambda: flow, os.fdopen(os.dup(fd), "wb", buffering=0))
        transport.set_write_buffer_limits(high=HIGH_WATER)
        return cls(transport, flow)

    async def write(self, pieces: Iterable[bytes | memoryview]) -> None:
        """Raises anyio.ClosedResourceError once the pipe is closed (the client is gone): the
        SDK's stdout writer then ends quietly."""
        for piece in pieces:
            view = memoryview(piece)
            for start in range(0, len(view), WRITE_SLICE):
                if self._flow.gone.is_set():
                    raise anyio.ClosedResourceError
                self._transport.write(view[start:start + WRITE_SLICE])
                if not self._flow.drained.is_set():
                    await self._flow.drained.wait()

    async def close(self) -> None:
        """Close once what is buffered is written (asyncio's pipe transport flushes first); a
        client that has not read it within CLOSE_WAIT seconds loses it."""
        self._transport.close()
        with anyio.move_on_after(CLOSE_WAIT):
            await self._flow.gone.wait()
        if not self._flow.gone.is_set():
            self._transport.abort()


class ThreadOut:
    """stdout written by blocking writes in a worker thread (a terminal or a file): the pieces
    are made in that thread too, so a long answer is escaped while the client reads."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    async def write(self, pieces: Iterable[bytes | memoryview]) -> None:
        await anyio.to_thread.run_sync(self._write_all, pieces)

    def _write_all(self, pieces: Iterable[bytes | memoryview]) -> None:
        for piece in pieces:
            self._out.write(piece)
        self._out.flush()

    async def close(self) -> None:
        return None


@asynccontextmanager
async def wire_ends() -> AsyncIterator[tuple[StdinLines | None, PipeOut | ThreadOut]]:
    """stdin's lines (None: leave stdin to the SDK, which claims it itself) and stdout, each read
    or written by the event loop when it is a pipe or a socket; fd 0 and fd 1 restored on exit."""
    sys.stdout.flush()
    restores: list[Callable[[], None]] = []
    stdin: StdinLines | None = None
    out: PipeOut | ThreadOut = ThreadOut(sys.stdout.buffer)
    try:
        if pollable(0) and (claimed := claim_fd(0, to_devnull)) is not None:
            restores.append(blocking_again(*claimed))
            stdin = await StdinLines.open(claimed[0])
        piped = pollable(1)
        if (claimed := claim_fd(1, to_stderr)) is not None:
            private = claimed[0]
            restores.append(blocking_again(*claimed) if piped else claimed[1])
            out = await PipeOut.open(private) if piped else ThreadOut(os.fdopen(private, "wb", closefd=False))
        yield stdin, out
    finally:
        with anyio.CancelScope(shield=True):
            await out.close()
        if stdin is not None:
            stdin.close()
        for restore in reversed(restores):
            restore()

