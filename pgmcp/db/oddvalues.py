"""Values that would break the JSON encoder: too deep, too large a number, not UTF-8.

Each one comes back encoded or as a marker, never as an error:

- json/jsonb nested deeper than `MAX_DEPTH` levels (the encoders downstream stop near 255:
  pydantic's "Maximum serialization depth exceeded", orjson's recursion limit; Python's own
  `json.loads` raises RecursionError near 1,000) is replaced by a `TooDeep` marker, found
  without recursion;
- JSON numbers Python cannot hold as they are: `1e400` would become a float infinity (invalid
  JSON) and an integer of more than 4,300 digits is refused by `int()`; both are kept as exact
  `Decimal`s, which the encoder writes as text;
- text from a `SQL_ASCII` database is whatever bytes were stored: it is decoded as UTF-8 with
  U+FFFD for invalid sequences (PostgreSQL does no conversion for SQL_ASCII).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

MAX_DEPTH = 100
_INT_DIGITS = 4000  # below sys.int_info.default_max_str_digits (4300)


class TooDeep:
    """A json/jsonb value nested deeper than MAX_DEPTH; its str is the marker a caller sees."""

    def __init__(self, depth: str) -> None:
        self.depth = depth

    def __str__(self) -> str:
        return (
            f"<json value nested {self.depth} levels deep, more than pgmcp returns ({MAX_DEPTH}); "
            "select a part of it with -> or #> instead>"
        )


def _float(text: str) -> float | Decimal:
    value = float(text)
    return value if math.isfinite(value) else Decimal(text)


def _int(text: str) -> int | Decimal:
    return int(text) if len(text) <= _INT_DIGITS else Decimal(text)


def depth_over(value: Any, limit: int) -> bool:
    """True when `value` (parsed JSON) nests more than `limit` containers deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


def decode_json(text: str) -> Any:
    """json/jsonb text as Python values, or a TooDeep marker (see the module docstring)."""
    try:
        value = json.loads(text, parse_float=_float, parse_int=_int)
    except RecursionError:
        return TooDeep("about 1,000 or more")
    # Cheap pre-test: a document with few brackets cannot be deep.
    if text.count("[") + text.count("{") > MAX_DEPTH and depth_over(value, MAX_DEPTH):
        return TooDeep(f"more than {MAX_DEPTH}")
    return value


def decode_text_lossy(data: bytes) -> str:
    """Text bytes from a SQL_ASCII database: UTF-8, invalid sequences as U+FFFD."""
    return data.decode("utf-8", errors="replace")


def decode_jsonb_lossy(data: bytes) -> Any:
    """jsonb in binary format (a version byte, then the text) from a SQL_ASCII database."""
    return decode_json(decode_text_lossy(data[1:]))


def decode_json_lossy(data: bytes) -> Any:
    return decode_json(decode_text_lossy(data))


TEXT_TYPES = ("text", "varchar", "bpchar", "name", "xml")


async def install_lossy_text(conn: Any) -> None:
    """On a SQL_ASCII database, decode text types and json/jsonb without failing on bad UTF-8."""
    settings = conn.get_settings()
    if getattr(settings, "server_encoding", "UTF8") != "SQL_ASCII":
        return
    for name in TEXT_TYPES:
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=lambda s: s.encode(), decoder=decode_text_lossy, format="binary"
        )
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=lambda v: json.dumps(v).encode(), decoder=decode_json_lossy,
        format="binary",
    )
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=lambda v: b"\x01" + json.dumps(v).encode(),
        decoder=decode_jsonb_lossy, format="binary",
    )
