"""PostgreSQL values (as asyncpg decodes them) to JSON-safe values, and JSON text out.

Results go to a model or a person as JSON, so every value must survive the trip without
losing meaning: numbers JSON hosts cannot hold exactly become strings (numeric, NaN,
infinities, and integers beyond +/-(2^53 - 1), which JavaScript hosts would round), times
become ISO 8601 text to the microsecond, binary data becomes base64 (or hex), and values no
client can read (nested more than `pgjson.MAX_DEPTH` levels) become a marker saying so.

`RowEncoder` writes rows (asyncpg Records or tuples of values) as JSON: columns whose values
orjson writes exactly as pgmcp wants cost no Python work per value, and a whole batch of rows
is one orjson call; other values pick their converter from one table (`converters`) by their
Python type, so the common types cost one dict look-up.
`dumps` writes JSON text with orjson. `install_codecs` sets the per-connection codecs this
relies on: json/jsonb through `pgmcp.db.pgjson.decode`, intervals exact
(`pgmcp.db.intervals`), pg_lsn as PostgreSQL writes it, and in SQL_ASCII databases text that
is not UTF-8 decoded with U+FFFD (`pgmcp.db.oddvalues`); the one-byte "char" type is decoded
with U+FFFD for a byte that is not UTF-8 on its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias, cast

import asyncpg
import orjson
from asyncpg.pgproto import pgproto
from asyncpg.pgproto.types import BitString, Box, Circle, Line, LineSegment, Path, Point, Polygon

from pgmcp.config.model import LimitsConfig
from pgmcp.db import intervals, pgjson
from pgmcp.db.intervals import PgInterval, interval_iso8601, timedelta_iso8601
from pgmcp.db.oddvalues import install_lossy_text

__all__ = [
    "CHAR_TYPES", "NATIVE_TYPES", "JsonValue", "PgInterval", "RowEncoder", "SerializeOptions", "dumps",
    "install_codecs", "interval_iso8601", "json_size", "row_to_json", "timedelta_iso8601", "to_json",
    "type_key",
]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
Converter = Callable[[Any], Any]

# asyncpg maps PostgreSQL's 'infinity'/'-infinity' dates and timestamps onto these values.
_DATE_INF, _DATE_NEG_INF = dt.date.max, dt.date.min
_TS_INF, _TS_NEG_INF = dt.datetime.max, dt.datetime.min


@dataclass(frozen=True)
class SerializeOptions:
    """How to render the values JSON has no exact form for (from `LimitsConfig`)."""

    decimal_as_float: bool = False
    bytes_format: Literal["base64", "hex"] = "base64"

    @classmethod
    def from_limits(cls, limits: LimitsConfig) -> SerializeOptions:
        return cls(decimal_as_float=limits.decimal_as_float, bytes_format=limits.bytes_format)

    @functools.cached_property
    def table(self) -> dict[type, Converter | None]:
        """`converters(self)`, looked up once per options object (it runs for every value)."""
        return converters(self)


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    text = str(value)  # PostgreSQL's scale, as written; str() only goes to exponent form for tiny values
    return format(value, "f") if "E" in text else text


def _decimal_float(value: Decimal) -> float | str:
    as_float = float(value)  # 1e400 would become infinity: then the exact text
    return as_float if math.isfinite(as_float) else _decimal_text(value)


def _point(p: tuple[float, float]) -> dict[str, JsonValue]:
    # Circle.center is a plain tuple, not a Point, hence indexing.
    return {"x": _float(p[0]), "y": _float(p[1])}


def _datetime(value: dt.datetime) -> str:
    if value.year in (1, 9999):  # cheap pre-test: this runs for every timestamp of every row
        naive = value.replace(tzinfo=None)
        if naive == _TS_INF:
            return "infinity"
        if naive == _TS_NEG_INF:
            return "-infinity"
    return value.isoformat()


def _date(value: dt.date) -> str:
    if value == _DATE_INF:
        return "infinity"
    if value == _DATE_NEG_INF:
        return "-infinity"
    return value.isoformat()


def _bitstring(value: BitString) -> str:
    return str(value.as_string()).replace(" ", "")  # as_string() groups by 4


_GEOMETRY: dict[type, Converter] = {
    Point: _point,
    Box: lambda v: {"high": _point(v.high), "low": _point(v.low)},
    LineSegment: lambda v: {"p1": _point(v.p1), "p2": _point(v.p2)},
    Line: lambda v: {"a": _float(v[0]), "b": _float(v[1]), "c": _float(v[2])},
    Circle: lambda v: {"center": _point(v.center), "radius": _float(v.radius)},
    Polygon: lambda v: {"points": [_point(p) for p in v.points]},
    Path: lambda v: {"closed": v.is_closed, "points": [_point(p) for p in v.points]},
}
_TEXT_LIKE = (
    uuid.UUID, pgproto.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
    ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network,
)


@functools.cache
def converters(options: SerializeOptions) -> dict[type, Converter | None]:
    """Python type -> its converter (None: already JSON-safe as it is). Exact types only;
    subclasses and anything else take `to_json`'s slower isinstance path."""
    table: dict[type, Converter | None] = {
        type(None): None, bool: None, str: None,
        # dicts come from json/jsonb (made safe by pgjson.decode) and hstore (text to text)
        dict: None,
        int: pgjson.safe_int,
        float: _float,
        Decimal: _decimal_float if options.decimal_as_float else _decimal_text,
        dt.datetime: _datetime,
        dt.date: _date,
        dt.time: dt.time.isoformat,
        dt.timedelta: timedelta_iso8601,
        PgInterval: PgInterval.iso8601,
        bytes: bytes.hex if options.bytes_format == "hex" else lambda v: base64.b64encode(v).decode("ascii"),
        BitString: _bitstring,
        **_GEOMETRY,
    }
    table.update(dict.fromkeys(_TEXT_LIKE, str))
    return table


def to_json(value: Any, options: SerializeOptions = SerializeOptions(), depth: int = 0) -> JsonValue:
    """One decoded PostgreSQL value as a JSON-safe value (recursing into arrays and records)."""
    table = options.table
    kind = type(value)
    if kind in table:
        convert = table[kind]
        return value if convert is None else convert(value)  # type: ignore[no-any-return]
    if depth >= pgjson.MAX_DEPTH:
        return pgjson.too_deep()
    if isinstance(value, asyncpg.Range):
        return {
            "lower": to_json(value.lower, options, depth + 1),
            "upper": to_json(value.upper, options, depth + 1),
            "lower_inc": value.lower_inc,
            "upper_inc": value.upper_inc,
            "empty": value.isempty,
        }
    if isinstance(value, asyncpg.Record):
        return {str(k): to_json(v, options, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple) and kind not in _GEOMETRY:
        return [to_json(v, options, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v, options, depth + 1) for k, v in value.items()}
    for base, convert in table.items():  # subclasses of the table's types
        if isinstance(value, base) and base is not type(None):
            return cast(JsonValue, value if convert is None else convert(value))
    if isinstance(value, bytearray | memoryview):
        return to_json(bytes(value), options)
    # Types asyncpg has no codec for arrive as PostgreSQL's text; anything else, say so as text.
    return str(value)


def _char_to_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_char_to_text(v) for v in value]
    return value


# asyncpg decodes the one-byte type "char" to bytes, and its codec cannot be overridden by
# name ('char' means bpchar to asyncpg), so such columns are recognised by their type name.
CHAR_TYPES = frozenset({"char", "char[]"})


# Columns whose values orjson writes exactly as `to_json` would, given the `default` below for
# Decimal, bytes, UUID, intervals and network types: no Python work per value. Integers here
# never pass 2^53; json/jsonb come from pgjson.decode (already safe). Timestamps and dates are
# native too: the only difference, 'infinity' (asyncpg's datetime.max/min), is caught per row.
# Every other type (int8, float, geometry, records, "char", user and extension types) gets a
# Python converter first. Names are asyncpg's; non-pg_catalog types come schema-qualified.
NATIVE_TYPES = frozenset(
    base + suffix
    for base in (
        "int2", "int4", "oid", "text", "varchar", "bpchar", "name", "bool", "uuid", "date", "timestamp",
        "timestamptz", "time", "json", "jsonb", "numeric", "bytea", "interval", "inet", "cidr", "macaddr",
        "macaddr8", "money", "xml", "tsvector", "tsquery", "regclass", "regproc", "regtype", "pg_lsn",
    )
    for suffix in ("", "[]")
)
_INFINITY_MARKS = (b'"9999-12-31', b'"0001-01-01')  # datetime/date max and min, as orjson writes them
# Integers past 2^53 raise (the row then takes the Python converters); dataclasses (PgInterval)
# go to `default` instead of being written field by field.
_OPTIONS = orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATACLASS


def _column_converter(type_name: str, options: SerializeOptions) -> Converter | None:
    if type_name in NATIVE_TYPES:
        return None
    table = options.table
    if type_name == "int8":
        return pgjson.safe_int
    if type_name in ("float4", "float8"):
        return _float
    if type_name in CHAR_TYPES:
        return lambda v: to_json(_char_to_text(v), options)
    if type_name in ("point", "box", "lseg", "line", "circle", "polygon", "path", "timetz", "bit", "varbit"):
        return lambda v: table[type(v)](v) if type(v) in table else to_json(v, options)  # type: ignore[misc]
    return functools.partial(to_json, options=options)


class RowEncoder:
    """Rows of one result -> JSON: `encode` writes a row as compact JSON bytes, `encode_rows` a
    list of rows as one JSON array, `__call__` returns a row as JSON-safe Python values. All say
    the same thing (a row's JSON parses back to its values). A row is any sequence of values in
    column order (an asyncpg Record, a tuple).

    `types` are the columns' asyncpg type names, schema-qualified outside pg_catalog (see
    `NATIVE_TYPES`); without them every value takes the Python converters, which is exact too.
    """

    def __init__(self, types: tuple[str, ...] = (), options: SerializeOptions = SerializeOptions()) -> None:
        self._table = table = options.table
        self._options = options
        self._char = frozenset(i for i, t in enumerate(types) if t in CHAR_TYPES)
        self._typed = bool(types)
        self._pre = tuple(
            (i, convert) for i, t in enumerate(types) if (convert := _column_converter(t, options)) is not None
        )

        def default(value: Any) -> Any:  # what orjson cannot write itself: Decimal, UUID, bytes, ...
            convert = table.get(type(value))
            return convert(value) if convert is not None else to_json(value, options)

        self._default = default

    def _fast(self, rows: Sequence[Sequence[Any]]) -> bytes | None:
        """`rows` as one JSON array in one orjson call, or None when a value needs the careful
        path (an integer beyond 2^53 where none was expected, an infinite timestamp, ...)."""
        if not self._typed:
            return None
        pre = self._pre
        try:
            if pre:
                converted: list[list[Any]] = list(map(list, rows))
                for i, convert in pre:  # column by column: one loop per converted column
                    if convert is pgjson.safe_int:  # bigint: only values beyond 2^53 change
                        high, low = pgjson.MAX_SAFE_INTEGER, -pgjson.MAX_SAFE_INTEGER
                        for values in converted:
                            value = values[i]
                            if value is not None and (value > high or value < low):
                                values[i] = str(value)
                        continue
                    for values in converted:
                        if values[i] is not None:
                            values[i] = convert(values[i])
                rows = converted
            elif not all(type(row) is tuple for row in rows):
                rows = [tuple(row) for row in rows]  # asyncpg Records are no JSON arrays to orjson
            data = orjson.dumps(rows, default=self._default, option=_OPTIONS)
        except Exception:
            return None  # a value orjson cannot write exactly: go slowly
        if _INFINITY_MARKS[0] in data or _INFINITY_MARKS[1] in data:
            return None
        return data

    def encode(self, row: Sequence[Any]) -> bytes:
        """One row as compact JSON (UTF-8): the exact bytes it takes in a result."""
        data = self._fast((row,))
        if data is not None:
            # orjson hands back its whole output buffer (4 KiB for a 200-byte row); a copy of
            # the exact size is what a result of thousands of rows keeps.
            return bytes(memoryview(data)[1:-1])
        return dumps(self(row)).encode()

    def encode_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """`rows` as one compact JSON array: `[` + each row's `encode` joined by commas + `]`,
        written by one orjson call where every value allows it (about four times faster than
        row by row), else row by row."""
        data = self._fast(rows)
        if data is not None:
            return data
        return b"[" + b",".join(self.encode(row) for row in rows) + b"]"

    def __call__(self, row: Sequence[Any]) -> list[JsonValue]:
        """One row as JSON-safe Python values, each through the converter table."""
        table, options = self._table, self._options
        values: Iterable[Any] = row
        if self._char:
            values = [_char_to_text(v) if i in self._char else v for i, v in enumerate(row)]
        out: list[JsonValue] = []
        append = out.append
        for v in values:
            kind = type(v)
            if kind in table:
                convert = table[kind]
                append(v if convert is None else convert(v))
            else:
                append(to_json(v, options))
        return out


def type_key(pg_type: Any) -> str:
    """The name `RowEncoder` knows a column type by: asyncpg's name, schema-qualified outside pg_catalog."""
    name = str(pg_type.name)
    return name if pg_type.schema == "pg_catalog" else f"{pg_type.schema}.{name}"


def row_to_json(
    record: Any, options: SerializeOptions = SerializeOptions(), types: tuple[str, ...] = ()
) -> list[JsonValue]:
    """One result row (an asyncpg Record) as JSON-safe values in column order."""
    return RowEncoder(types, options)(record)


def dumps(value: Any) -> str:
    """Compact JSON text (UTF-8, not ASCII-escaped) of JSON-safe `value`, written by orjson.

    Anything orjson refuses (an integer beyond 64 bits, a lone surrogate, a type it does not
    know, nesting past 255) is written by the standard library instead, ASCII-escaped, with
    unknown types as their text: never an exception for a value pgmcp itself produced.
    """
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=str)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (what `dumps` writes)."""
    try:
        return len(orjson.dumps(value, default=str))
    except TypeError:
        return len(json.dumps(value, separators=(",", ":"), default=str))


async def install_codecs(conn: Any) -> None:
    """Per-connection codecs: json/jsonb safe and parsed, intervals exact (module docstring)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=pgjson.encode, decoder=pgjson.decode, format="text"
        )
    await conn.set_type_codec(
        "interval", schema="pg_catalog", encoder=intervals.encode, decoder=intervals.decode, format="tuple",
    )
    # asyncpg decodes pg_lsn to an int; PostgreSQL's own form ("0/16B6C50") is what people read.
    await conn.set_type_codec("pg_lsn", schema="pg_catalog", encoder=str, decoder=str, format="text")
    await install_lossy_text(conn)  # SQL_ASCII databases: bad UTF-8 becomes U+FFFD, not an error
