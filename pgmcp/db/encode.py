"""Fetched rows to the result's JSON, cut exactly at `max_result_bytes`.

Runs after the transaction ended (`pgmcp.db.executor`): a small result on the event loop, a
larger one in a thread (`pgmcp.db.offload`). The rows arrive in the batches they were fetched
in, and each batch is written by one orjson call (`RowEncoder.encode_rows`); only the batch in
which the cut falls is written row by row, to find the last row that fits. A batch's values
are dropped as soon as it is written, so the values and the JSON of every row never exist at
once.

The size that `max_result_bytes` limits is the compact JSON with every non-ASCII character
escaped: never less than the UTF-8 size of the same JSON, so the cap errs on the safe side.
ASCII JSON is measured by its length; other JSON is written once more by the standard library
(C-accelerated) to measure it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import orjson

from pgmcp.db.result import RowsJson
from pgmcp.db.serialize import RowEncoder

_ASCII = json.JSONEncoder(separators=(",", ":"), default=str)


def measured(data: bytes) -> int:
    """The size `max_result_bytes` counts for JSON `data` (see the module docstring)."""
    return len(data) if data.isascii() else len(_ASCII.encode(orjson.loads(data)))


def encode_batches(
    batches: list[list[Sequence[object]]], encoder: RowEncoder, max_bytes: int
) -> tuple[RowsJson, int, bool]:
    """(the rows' JSON, how many rows it holds, whether `max_bytes` cut it). Empties `batches`."""
    chunks: list[bytes | memoryview] = []
    size = 2  # "[]"; every row adds its size and a separator
    rows = 0
    batches.reverse()
    while batches:
        batch = batches.pop()
        if not batch:
            continue
        data = encoder.encode_rows(batch)
        batch_size = measured(data) - 1  # the rows' sizes plus one separator each
        if size + batch_size <= max_bytes:
            chunks.append(memoryview(data)[1:-1])
            size += batch_size
            rows += len(batch)
            continue
        del data
        kept: list[bytes] = []
        for row in batch:
            one = encoder.encode(row)
            row_size = measured(one) + 1
            if size + row_size > max_bytes:
                break
            kept.append(one)
            size += row_size
        if kept:
            chunks.append(b",".join(kept))
        batches.clear()
        return RowsJson(tuple(chunks)), rows + len(kept), True
    return RowsJson(tuple(chunks)), rows, False
