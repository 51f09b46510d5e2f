"""PostgreSQL values (as asyncpg decodes them) to JSON-safe values.

Results go to a model or a person as JSON, so every value must survive `json.dumps` without
losing meaning: numbers that JSON cannot hold exactly (numeric, NaN, infinities) become
strings, times become ISO 8601 text, binary data becomes base64 (or hex). `install_codecs`
sets the per-connection codecs this relies on: json/jsonb come back parsed, and intervals
come back as (months, days, microseconds) because asyncpg's default folds a month into 30
days, which would turn `1 year` into `P360D`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias, cast

import asyncpg
from asyncpg.pgproto.types import BitString, Box, Circle, Line, LineSegment, Path, Point, Polygon

from pgmcp.config.model import LimitsConfig
from pgmcp.db.oddvalues import decode_json, install_lossy_text

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

_USECS_PER_SEC = 1_000_000
_USECS_PER_MIN = 60 * _USECS_PER_SEC
_USECS_PER_HOUR = 60 * _USECS_PER_MIN
_USECS_PER_DAY = 24 * _USECS_PER_HOUR

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


@dataclass(frozen=True)
class PgInterval:
    """A PostgreSQL interval as stored: months, days and microseconds, each with its own sign."""

    months: int
    days: int
    microseconds: int

    def iso8601(self) -> str:
        return interval_iso8601(self.months, self.days, self.microseconds)


def _trunc_div(a: int, b: int) -> tuple[int, int]:
    """C-style division (toward zero), as PostgreSQL splits interval fields."""
    q = abs(a) // b * (1 if a >= 0 else -1)
    return q, a - q * b


def interval_iso8601(months: int, days: int, microseconds: int) -> str:
    """The ISO 8601 duration PostgreSQL itself prints with `IntervalStyle = iso_8601`."""
    years, mons = _trunc_div(months, 12)
    hours, rest = _trunc_div(microseconds, _USECS_PER_HOUR)
    mins, rest = _trunc_div(rest, _USECS_PER_MIN)
    secs, fsec = _trunc_div(rest, _USECS_PER_SEC)
    if not any((years, mons, days, hours, mins, secs, fsec)):
        return "PT0S"
    out = ["P"]
    out += [f"{v}{u}" for v, u in ((years, "Y"), (mons, "M"), (days, "D")) if v]
    if hours or mins or secs or fsec:
        out.append("T")
        out += [f"{v}{u}" for v, u in ((hours, "H"), (mins, "M")) if v]
        if secs or fsec:
            sign = "-" if secs < 0 or fsec < 0 else ""
            text = str(abs(secs))
            if fsec:
                text += "." + f"{abs(fsec):06d}".rstrip("0")
            out.append(f"{sign}{text}S")
    return "".join(out)


def timedelta_iso8601(value: dt.timedelta) -> str:
    """A Python timedelta as an ISO 8601 duration (days, then a signed time part)."""
    total = (value.days * 86_400 + value.seconds) * _USECS_PER_SEC + value.microseconds
    days, rest = _trunc_div(total, _USECS_PER_DAY)
    return interval_iso8601(0, days, rest)


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _decimal(value: Decimal, options: SerializeOptions) -> float | str:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    # format(..., "f") never uses exponent notation, so 0.0000001 stays as written.
    if options.decimal_as_float and math.isfinite(as_float := float(value)):
        return as_float
    return format(value, "f")  # also when a float cannot hold it (1e400 would become infinity)


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


def _geometry(value: Any) -> JsonValue | None:
    """Geometric types as small dicts; None when `value` is not one (order matters: all are tuples)."""
    if isinstance(value, Point):
        return _point(value)
    if isinstance(value, Box):
        return {"high": _point(value.high), "low": _point(value.low)}
    if isinstance(value, LineSegment):
        return {"p1": _point(value.p1), "p2": _point(value.p2)}
    if isinstance(value, Line):
        return {"a": _float(value[0]), "b": _float(value[1]), "c": _float(value[2])}
    if isinstance(value, Circle):
        return {"center": _point(value.center), "radius": _float(value.radius)}
    if isinstance(value, Polygon):
        return {"points": [_point(p) for p in value.points]}
    if isinstance(value, Path):
        return {"closed": value.is_closed, "points": [_point(p) for p in value.points]}
    return None


_TEXT_LIKE = (
    uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
    ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network,
)


def to_json(value: Any, options: SerializeOptions = SerializeOptions()) -> JsonValue:
    """One decoded PostgreSQL value as a JSON-safe value (recursing into arrays and records)."""
    kind = type(value)
    if value is None or kind is int or kind is str or kind is bool:
        return cast(JsonValue, value)  # the common case first: runs for every value of every row
    if kind is dt.datetime:
        return _datetime(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return _decimal(value, options)
    if isinstance(value, dt.datetime):
        return _datetime(value)
    if isinstance(value, dt.date):
        return _date(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return timedelta_iso8601(value)
    if isinstance(value, PgInterval):
        return value.iso8601()
    if isinstance(value, _TEXT_LIKE):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw.hex() if options.bytes_format == "hex" else base64.b64encode(raw).decode("ascii")
    if isinstance(value, BitString):
        return str(value.as_string()).replace(" ", "")  # as_string() groups by 4
    if isinstance(value, asyncpg.Range):
        return {
            "lower": to_json(value.lower, options),
            "upper": to_json(value.upper, options),
            "lower_inc": value.lower_inc,
            "upper_inc": value.upper_inc,
            "empty": value.isempty,
        }
    if isinstance(value, asyncpg.Record):
        return {str(k): to_json(v, options) for k, v in value.items()}
    geometry = _geometry(value)
    if geometry is not None:
        return geometry
    if isinstance(value, Mapping):
        return {str(k): to_json(v, options) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, options) for v in value]
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


def row_to_json(
    record: Any, options: SerializeOptions = SerializeOptions(), types: tuple[str, ...] = ()
) -> list[JsonValue]:
    """One result row (an asyncpg Record) as JSON-safe values in column order.

    `types` are the columns' asyncpg type names (see `CHAR_TYPES`); may be empty.
    """
    values = list(record.values())
    if types and CHAR_TYPES.intersection(types):
        values = [_char_to_text(v) if t in CHAR_TYPES else v for v, t in zip(values, types, strict=False)]
    return [to_json(v, options) for v in values]


def _interval_decode(value: tuple[int, int, int]) -> PgInterval:
    months, days, microseconds = value
    return PgInterval(months, days, microseconds)


def _interval_encode(value: PgInterval | dt.timedelta) -> tuple[int, int, int]:
    if isinstance(value, PgInterval):
        return (value.months, value.days, value.microseconds)
    return (0, value.days, value.seconds * _USECS_PER_SEC + value.microseconds)


async def install_codecs(conn: Any) -> None:
    """Per-connection codecs: json/jsonb parsed, intervals exact (see the module docstring)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=json.dumps, decoder=decode_json, format="text"
        )
    await conn.set_type_codec(
        "interval", schema="pg_catalog", encoder=_interval_encode, decoder=_interval_decode,
        format="tuple",
    )
    # asyncpg decodes pg_lsn to an int; PostgreSQL's own form ("0/16B6C50") is what people read.
    await conn.set_type_codec("pg_lsn", schema="pg_catalog", encoder=str, decoder=str, format="text")
    await install_lossy_text(conn)  # SQL_ASCII databases: bad UTF-8 becomes U+FFFD, not an error
