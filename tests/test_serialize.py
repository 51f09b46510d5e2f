"""Every PostgreSQL type pgmcp may return, decoded by asyncpg and made JSON-safe (table-driven)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from pgmcp.db.pgjson import too_deep
from pgmcp.db.serialize import (
    CHAR_TYPES,
    RowEncoder,
    SerializeOptions,
    dumps,
    install_codecs,
    row_to_json,
    to_json,
    type_key,
)
from tests.conftest import TestDatabase

SETUP = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TYPE pair AS (x int, y text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
"""

R = {"lower_inc": True, "upper_inc": False, "empty": False}


def nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


NESTED_100 = nested(100)

# (SQL expression, expected JSON value). Each expression is selected on its own.
CASES: list[tuple[str, Any]] = [
    ("NULL::int", None),
    ("true", True),
    ("32767::int2", 32767),
    ("(-2147483648)::int4", -2147483648),
    # Integers a double cannot hold (beyond +/-(2^53 - 1)) come as their decimal text.
    ("9007199254740991::int8", 9007199254740991),
    ("(-9007199254740991)::int8", -9007199254740991),
    ("9007199254740992::int8", "9007199254740992"),
    ("(-9007199254740992)::int8", "-9007199254740992"),
    ("9223372036854775807::int8", "9223372036854775807"),
    ("ARRAY[1, 9007199254740993]::int8[]", [1, "9007199254740993"]),
    ("'[1,9007199254740993)'::int8range", {"lower": 1, "upper": "9007199254740993", **R}),
    ("1.5::float4", 1.5),
    ("0.1::float8", 0.1),
    ("'NaN'::float8", "NaN"),
    ("'Infinity'::float8", "Infinity"),
    ("'-Infinity'::float4", "-Infinity"),
    ("12345678901234567890.123456789::numeric", "12345678901234567890.123456789"),
    ("1.50::numeric(5,2)", "1.50"),
    ("0.0000001::numeric", "0.0000001"),
    ("'NaN'::numeric", "NaN"),
    ("1e300::numeric", "1" + "0" * 300),
    ("'1e-300'::numeric", "0." + "0" * 299 + "1"),
    ("'Infinity'::numeric", "Infinity"),
    ("'-Infinity'::numeric", "-Infinity"),
    ("'12.34'::money", "$12.34"),
    ("'héllo'::text", "héllo"),
    ("'ab'::char(3)", "ab "),
    ("'ab'::varchar(5)", "ab"),
    ("'tbl'::name", "tbl"),
    ("'a'::\"char\"", "a"),
    ("chr(255)::\"char\"", "\ufffd"),  # the first byte of U+00FF in UTF-8: not UTF-8 on its own
    ("'\\xdeadbeef'::bytea", "3q2+7w=="),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("'2024-02-29'::date", "2024-02-29"),
    ("'infinity'::date", "infinity"),
    ("'-infinity'::date", "-infinity"),
    ("'2024-01-02 03:04:05.678'::timestamp", "2024-01-02T03:04:05.678000"),
    ("'2024-01-02 03:04:05+02'::timestamptz", "2024-01-02T01:04:05+00:00"),
    ("'2024-01-02 03:04:05.000001+00'::timestamptz", "2024-01-02T03:04:05.000001+00:00"),
    ("'infinity'::timestamptz", "infinity"),
    ("'-infinity'::timestamp", "-infinity"),
    ("'13:14:15'::time", "13:14:15"),
    ("'13:14:15.25+05:30'::timetz", "13:14:15.250000+05:30"),
    ("'1 year 2 months 3 days 04:05:06.5'::interval", "P1Y2M3DT4H5M6.5S"),
    ("'0'::interval", "PT0S"),
    ("'-1 day +02:00'::interval", "P-1DT2H"),
    ("'-90 minutes'::interval", "PT-1H-30M"),
    ("""'{"a": [1, 2, null], "b": "x"}'::json""", {"a": [1, 2, None], "b": "x"}),
    ("""'{"k": {"n": 1.5}}'::jsonb""", {"k": {"n": 1.5}}),
    ("'\"just a string\"'::jsonb", "just a string"),
    ("""'{"a": 12345678901234567890, "b": 9007199254740991}'::jsonb""",
     {"a": "12345678901234567890", "b": 9007199254740991}),
    ("'[1e400]'::jsonb", ["1" + "0" * 400]),
    ("'1e400'::json", "1e400"),
    ("""'"a\\ud800b"'::json""", "a\ufffdb"),
    ("""'{"\\udc00": 1}'::json""", {"\ufffd": 1}),
    ("(repeat('[', 100) || repeat(']', 100))::jsonb", NESTED_100),
    ("(repeat('[', 101) || repeat(']', 101))::jsonb", too_deep()),
    ("(repeat('[', 5000) || repeat(']', 5000))::jsonb", too_deep()),
    ("ARRAY['{\"a\": 9007199254740993}'::jsonb]", [{"a": "9007199254740993"}]),
    ("ARRAY[1, NULL, 3]", [1, None, 3]),
    ("ARRAY[[1, 2], [3, 4]]", [[1, 2], [3, 4]]),
    ("ARRAY['a', NULL]::text[]", ["a", None]),
    ("'{}'::int[]", []),
    ("ARRAY[1.5, 'NaN']::numeric[]", ["1.5", "NaN"]),
    ("ARRAY['2024-01-01'::date]", ["2024-01-01"]),
    ("ROW(1, 'a')::pair", {"x": 1, "y": "a"}),
    ("ARRAY[ROW(1, 'a')::pair, NULL]", [{"x": 1, "y": "a"}, None]),
    ("ROW(1, 'a')", [1, "a"]),
    ("'[1,10)'::int4range", {"lower": 1, "upper": 10, **R}),
    ("'empty'::int4range", {"lower": None, "upper": None, "lower_inc": False, "upper_inc": False,
                            "empty": True}),
    ("'[1.5,2.5]'::numrange", {"lower": "1.5", "upper": "2.5", "lower_inc": True, "upper_inc": True,
                               "empty": False}),
    ("'[2024-01-01,)'::daterange", {"lower": "2024-01-01", "upper": None, **R}),
    ("'{[1,3),[5,7)}'::int4multirange", [{"lower": 1, "upper": 3, **R}, {"lower": 5, "upper": 7, **R}]),
    ("'happy'::mood", "happy"),
    ("ARRAY['sad', 'happy']::mood[]", ["sad", "happy"]),
    ("5::posint", 5),
    ("'192.168.1.5'::inet", "192.168.1.5"),
    ("'192.168.1.5/24'::inet", "192.168.1.5/24"),
    ("'10.0.0.0/8'::cidr", "10.0.0.0/8"),
    ("'::1'::inet", "::1"),
    ("'08:00:2b:01:02:03'::macaddr", "08:00:2b:01:02:03"),
    ("B'101'", "101"),
    ("B'10110'::varbit", "10110"),
    ("'(1,2)'::point", {"x": 1.0, "y": 2.0}),
    ("'((0,0),(2,3))'::box", {"high": {"x": 2.0, "y": 3.0}, "low": {"x": 0.0, "y": 0.0}}),
    ("'[(0,0),(1,1)]'::lseg", {"p1": {"x": 0.0, "y": 0.0}, "p2": {"x": 1.0, "y": 1.0}}),
    ("'{1,-1,0}'::line", {"a": 1.0, "b": -1.0, "c": 0.0}),
    ("'[(0,0),(1,1)]'::path", {"closed": False, "points": [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 1.0}]}),
    ("'((0,0),(1,0),(0,1))'::polygon",
     {"points": [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 1.0}]}),
    ("'<(0,0),2>'::circle", {"center": {"x": 0.0, "y": 0.0}, "radius": 2.0}),
    ("'<a>b</a>'::xml", "<a>b</a>"),
    ("'a fat cat'::tsvector", "'a' 'cat' 'fat'"),
    ("'fat & cat'::tsquery", "'fat' & 'cat'"),
    ("'$.a'::jsonpath", '$."a"'),
    ("'pg_class'::regclass", "pg_class"),
    ("'0/16B6C50'::pg_lsn", "0/16B6C50"),
    ("42::oid", 42),
]


@pytest.fixture(scope="module")
async def conn(pg_database: TestDatabase) -> AsyncIterator[Any]:
    pg_database.run_sql(SETUP)
    connection = await asyncpg.connect(pg_database.dsn)
    await install_codecs(connection)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0][:40] for c in CASES])
async def test_value(conn: Any, expr: str, expected: Any) -> None:
    stmt = await conn.prepare(f"SELECT {expr} AS v")
    record = await stmt.fetchrow()
    types = tuple(type_key(a.type) for a in stmt.get_attributes())
    [value] = row_to_json(record, SerializeOptions(), types)
    assert value == expected
    # The executor's path: a batch of rows written as one JSON array (orjson, Python converters
    # only where needed), or row by row where a value needs it. It must say the same, typed or
    # not (only "char" needs its type), and a batch must be exactly its rows joined.
    for encoder in [RowEncoder(types)] + ([] if CHAR_TYPES.intersection(types) else [RowEncoder()]):
        data = encoder.encode_rows([record, tuple(record)])
        assert json.loads(data) == [[expected], [expected]]
        assert data == b"[" + encoder.encode(record) + b"," + encoder.encode(tuple(record)) + b"]"
    json.dumps(value, allow_nan=False)  # JSON-safe, strictly
    assert json.loads(dumps(value)) == value  # and written as it is
    dumps(value).encode("utf-8")  # no lone surrogates


INTERVALS = [
    "1 year", "-1 year", "13 months", "-13 months", "1 mon -2 days", "1 day -1 second",
    "-0.5 seconds", "0.000001 seconds", "-1 day -02:03:04.5", "100 years 3 hours",
    "1 hour 0.25 seconds", "-1 mon +1 day -00:00:01",
]


@pytest.mark.parametrize("text", INTERVALS)
async def test_interval_matches_postgres_iso8601(conn: Any, text: str) -> None:
    """Our ISO 8601 rendering of an interval is exactly PostgreSQL's own (IntervalStyle iso_8601)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL IntervalStyle = iso_8601")
        value, pg_text = await conn.fetchrow("SELECT $1::text::interval, $1::text::interval::text", text)
    assert to_json(value) == pg_text


@pytest.mark.parametrize(
    ("expr", "options", "expected"),
    [
        ("1.25::numeric", SerializeOptions(decimal_as_float=True), 1.25),
        ("'NaN'::numeric", SerializeOptions(decimal_as_float=True), "NaN"),
        ("'\\xdeadbeef'::bytea", SerializeOptions(bytes_format="hex"), "deadbeef"),
    ],
)
async def test_options(conn: Any, expr: str, options: SerializeOptions, expected: Any) -> None:
    assert to_json(await conn.fetchval(f"SELECT {expr}"), options) == expected

