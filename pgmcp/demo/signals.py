"""Termination signals for `pgmcp demo`: SIGTERM and SIGHUP unwind like Ctrl-C does, so every
`finally` runs and the throwaway PostgreSQL is removed.

Outside an event loop the handler raises `Stopped` at once. Inside `run_async` it cancels the
main task instead (as asyncio's own SIGINT handling does): raising from a signal handler in
the middle of an anyio task group would surface as an exception group from wherever the
loop happened to be, while a cancellation unwinds the MCP server and its lifespan in order.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")
HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A termination signal arrived (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _State:
    task: asyncio.Task[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    received: int | None = None


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _State.received = signum
    task, loop = _State.task, _State.loop
    if task is not None and loop is not None and not task.done():
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # wake the selector
        return
    raise Stopped(signum)


@contextmanager
def termination_signals() -> Iterator[None]:
    """Install the handlers for SIGTERM and SIGHUP (main thread only) for the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)`, turning a termination signal into `Stopped` after an orderly unwind."""

    async def main() -> T:
        _State.task, _State.loop = asyncio.current_task(), asyncio.get_running_loop()
        try:
            return await coro
        finally:
            _State.task = _State.loop = None

    _State.received = None
    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if _State.received is not None:
            raise Stopped(_State.received) from None
        raise


def wait_for_signal() -> NoReturn:
    """Block the main thread until a signal's handler raises (Ctrl-C, or one of `HANDLED`).

    Not a plain blocking wait (`threading.Event().wait()`, `signal.pause()`): a Python signal
    handler runs only when the main thread next runs Python code, so a signal that arrives just
    before such a wait begins is handled by nobody and the wait never ends (seen: SIGTERM sent
    as soon as the demo said "Press Ctrl-C", on a loaded machine). Here the C-level handler also
    writes the signal's number into a pipe (`signal.set_wakeup_fd`), and `select` returns as soon
    as the pipe holds a byte, however early the signal came; back in Python, the handler runs.
    """
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write)
    try:
        while True:
            select.select([read], [], [])
            os.read(read, 512)
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
