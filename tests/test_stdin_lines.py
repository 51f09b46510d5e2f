"""stdin as the event loop reads it (pgmcp.mcp.stdin_lines): the lines the SDK's reader gets do not
depend on how the bytes arrive; an over-long line is dropped as it comes, never held whole;
the pipe is paused while too much waits, and resumed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgmcp.mcp import stdin_lines

STREAM = b'{"a": 1}\n{"b": "\xc3\xa9\xff"}\n\n{"c": [1, 2, 3]}\nlast without newline'
EXPECTED = ['{"a": 1}\n', '{"b": "\u00e9\ufffd"}\n', "\n", '{"c": [1, 2, 3]}\n', "last without newline"]


class FakeTransport(asyncio.ReadTransport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")


async def lines_of(chunks: list[bytes]) -> tuple[list[str], list[str]]:
    reader = stdin_lines.StdinLines()
    transport = FakeTransport()
    reader.connection_made(transport)

    async def feed() -> None:
        for chunk in chunks:
            reader.data_received(chunk)
            await asyncio.sleep(0)
        reader.eof_received()

    feeding = asyncio.create_task(feed())
    got = [line async for line in reader]
    await feeding
    return got, transport.calls


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, len(STREAM)])
async def test_the_lines_do_not_depend_on_the_chunks(size: int) -> None:
    got, _ = await lines_of(split_every(STREAM, size))
    assert got == EXPECTED


@pytest.mark.parametrize("size", [1, 5, 64])
async def test_an_over_long_line_is_dropped_and_the_next_is_read(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(stdin_lines, "MAX_LINE", 20)
    data = b'{"ok": 1}\n' + b"x" * 100 + b'\n{"ok": 2}\n' + b"y" * 50
    got, _ = await lines_of(split_every(data, size))
    # the dropped line stands as an empty one (the SDK answers it as unparsable); a long tail
    # without a newline is dropped too
    assert got == ['{"ok": 1}\n', "\n", '{"ok": 2}\n']


async def test_reading_pauses_while_too_much_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdin_lines, "QUEUED_BYTES", 10)
    reader = stdin_lines.StdinLines()
    transport = FakeTransport()
    reader.connection_made(transport)
    reader.data_received(b"0123456789\n" * 3)
    assert transport.calls == ["pause"]
    first = await reader.__anext__()
    assert first == "0123456789\n" and transport.calls == ["pause"]  # 22 bytes still waiting
    await reader.__anext__()
    assert transport.calls == ["pause"]  # 11 bytes: more than half the limit
    await reader.__anext__()
    assert transport.calls == ["pause", "resume"]  # nothing waits
    reader.eof_received()
    rest: list[Any] = [line async for line in reader]
    assert rest == []
