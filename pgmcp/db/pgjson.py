"""PostgreSQL `json`/`jsonb` text to Python values that every MCP host reads exactly.

The text PostgreSQL sends is valid JSON, but not every valid JSON value survives the trip to
a host: JavaScript hosts read numbers as doubles (so integers beyond +/-(2^53 - 1) round),
the MCP Python SDK's JSON reader refuses values nested more than about 200 levels, and a
`json` value (not `jsonb`, which rejects them: json_lex_string in
src/backend/utils/adt/jsonfuncs.c) may hold a lone UTF-16 surrogate escape (`"\\ud800"`),
which is no character at all and cannot be written as UTF-8. So, as `decode` reads a value:

- an integer beyond +/-(2^53 - 1) becomes its decimal text (a string), as bigint columns do;
- a number a double cannot hold (beyond about 1.8e308, `json` only) becomes its text;
- a lone surrogate becomes U+FFFD, the Unicode replacement character;
- a value nested more than `MAX_DEPTH` levels becomes a `marker` string saying so.

Plain values take one C-speed parse (orjson); only text that may hold one of the above
(16-digit runs, many brackets, or what orjson refuses) takes the careful path. `decode` never
raises: it runs inside asyncpg's row decoding, where an exception would fail the query.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
MAX_DEPTH = 100  # nesting levels a value may have; deeper becomes a marker (see the docstring)

# A 16-digit run is where an integer may pass 2^53 (orjson would read one beyond 2^64 as a
# double); it is found by mapping every digit to 0 (bytes.translate: C speed, unlike a regex).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 16
_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_int(value: int) -> int | str:
    """`value`, or its decimal text when a double cannot hold it exactly."""
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)


def marker(problem: str) -> str:
    """What stands in for a value that cannot be sent as it is: what is wrong and what to do."""
    return f"<{problem}>"


def too_deep() -> str:
    return marker(
        f"value nested more than {MAX_DEPTH} levels deep, more than MCP clients read; "
        "select a part of it instead (-> or #> for json)"
    )


def decode(text: str) -> Any:
    """One json/jsonb value as PostgreSQL wrote it -> a value safe to send (see the docstring).

    orjson refuses lone surrogates, numbers beyond a double and nesting past 1,024 levels, so
    those reach the careful path through its error; long digit runs and many brackets are
    looked for first.
    """
    shallow = len(text) <= 2 * MAX_DEPTH or text.count("[") + text.count("{") <= MAX_DEPTH
    if shallow and (len(text) < 16 or _LONG_RUN not in text.encode().translate(_DIGITS_TO_ZERO)):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return _careful(text)


def _int(text: str) -> int | str:
    digits = len(text) - (text[0] == "-")
    if digits <= 15:
        return int(text)
    # Beyond 17 digits, never call int(): Python refuses to parse more than 4,300 digits.
    return safe_int(int(text)) if digits <= 17 else text


def _float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _careful(text: str) -> Any:
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float)
    except RecursionError:
        return too_deep()
    except ValueError as exc:  # not JSON at all: cannot come from PostgreSQL, but never fail a query
        return marker(f"not valid JSON: {exc}")
    try:
        return _clean(value, 0)
    except _TooDeep:
        return too_deep()


class _TooDeep(Exception):
    pass


def _clean(value: Any, depth: int) -> Any:
    """`value` with lone surrogates replaced; _TooDeep past MAX_DEPTH levels."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise _TooDeep
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _TooDeep
        return {_SURROGATE.sub("\ufffd", k): _clean(v, depth + 1) for k, v in value.items()}
    return value


def encode(value: Any) -> str:
    """A Python value -> JSON text for PostgreSQL (the codec's encoder; pgmcp sends no parameters)."""
    return json.dumps(value)
