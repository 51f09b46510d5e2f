"""pgmcp.db.pgjson.decode: PostgreSQL json text -> values every host reads exactly (table-driven).

No database needed: the inputs are texts PostgreSQL can send (jsonb writes numbers in full,
never with an exponent; only `json` keeps exponents and surrogate escapes as written).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from pgmcp.db.pgjson import MAX_DEPTH, decode, too_deep
from pgmcp.db.serialize import dumps


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def brackets(levels: int) -> str:
    return "[" * levels + "]" * levels


CASES: list[tuple[str, str, Any]] = [
    ("object", '{"a": 1, "b": [true, null, "x"]}', {"a": 1, "b": [True, None, "x"]}),
    ("float", "[0.1, 1.5, -2e-3]", [0.1, 1.5, -0.002]),
    ("largest safe integer", "9007199254740991", 9007199254740991),
    ("smallest safe integer", "-9007199254740991", -9007199254740991),
    ("2^53 as text", "9007199254740992", "9007199254740992"),
    ("beyond 64 bits as text", '{"n": 123456789012345678901234567890}', {"n": "123456789012345678901234567890"}),
    ("digits PostgreSQL writes for 1e400", "1" + "0" * 400, "1" + "0" * 400),
    ("5,000 digits (beyond int()'s limit)", "9" * 5000, "9" * 5000),
    ("json exponent beyond a double", "[1e400, -1e400]", ["1e400", "-1e400"]),
    ("huge with a fraction", "1" + "0" * 400 + ".5", "1" + "0" * 400 + ".5"),
    ("16 digits inside a string stay a string", '"1234567890123456789"', "1234567890123456789"),
    ("lone high surrogate", '"a\\ud800b"', "a\ufffdb"),
    ("lone low surrogate in a key", '{"\\udc00": 1}', {"\ufffd": 1}),
    ("valid surrogate pair", '"\\ud83d\\ude00"', "\U0001f600"),
    ("NUL escape", '"a\\u0000b"', "a\x00b"),
    ("100 levels", brackets(MAX_DEPTH), nested(MAX_DEPTH)),
    ("101 levels", brackets(MAX_DEPTH + 1), too_deep()),
    ("400 levels", brackets(400), too_deep()),
    ("900 levels", brackets(900), too_deep()),
    ("5,000 levels", brackets(5000), too_deep()),
    ("deep objects", '{"a":' * 300 + "1" + "}" * 300, too_deep()),
    ("many brackets, shallow", "[" + ",".join(["[1]"] * 500) + "]", [[1]] * 500),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decode(text: str, expected: Any) -> None:
    value = decode(text)
    assert value == expected
    # Whatever decode returns can be written strictly, by orjson and the standard library alike.
    data = dumps(value)
    assert json.loads(data) == value
    orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    json.dumps(value, allow_nan=False).encode("utf-8")


def test_marker_says_what_to_do() -> None:
    marker = decode(brackets(MAX_DEPTH + 1))
    assert isinstance(marker, str) and "nested more than 100 levels deep" in marker and "->" in marker
