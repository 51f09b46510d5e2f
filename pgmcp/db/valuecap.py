"""Caps enforced while reading: `max_value_bytes` per value, and sizes to count `max_result_bytes`.

A value is decoded into Python as soon as its row arrives, so a 5M-element array or a 900 MB
string must be stopped in PostgreSQL. A SELECT is therefore run wrapped by pgmcp's own SQL
(S1 standing for `pg_catalog.pg_column_size(q.c1)`, or `octet_length` as below):

    SELECT CASE WHEN S1 OPERATOR(pg_catalog.>) N THEN NULL ELSE q.c1 END, ...,
           CAST(CASE WHEN S1 OPERATOR(pg_catalog.>) N THEN 200 ELSE COALESCE(S1, 0) END AS pg_catalog.int8)
             OPERATOR(pg_catalog.+) ...,
           CASE WHEN S1 OPERATOR(pg_catalog.>) N OR ... THEN ARRAY[S1, ...] END
    FROM (SELECT * FROM (
    <the checked SQL, unchanged>
    ) AS s OFFSET 0) AS q(c1, c2, ...)

After the user's columns come two of pgmcp's own: the row's size (the sum over the sized
columns) and, only for a row holding a value over the cap, the sizes of its sized columns (NULL
otherwise). So reading a row costs two look-ups in Python, not one per column (`RowSizes`).

Why this is safe to add to a checked statement (SECURITY_NOTES, "execute exactly what was
checked"):
- the checked text is embedded byte for byte (less a final `;`). It was first prepared alone in the same
  transaction, so PostgreSQL's lexer ends it in its initial state (no open string, comment or
  parenthesis) and the newlines around it end any `--` comment: the wrapper cannot change how
  it is read, and it cannot reach out of the parentheses;
- the wrapper calls only `pg_catalog.pg_column_size` (any type; it reads the value's header, no
  type-specific code), `pg_catalog.octet_length` on the built-in text types and bytea (chosen by
  type OID, never by name), `CASE`, `COALESCE`, `ARRAY[]` and integer comparison, addition and
  int4-to-int8 cast on those sizes, all schema-qualified, and a cast to text of the built-in
  `numeric` and `uuid` types (chosen by OID: `numeric_out`, `uuid_out`): no operator or
  function of a user's type, so no user-defined code runs that the checker did not see;
- `OFFSET 0` keeps the planner from pulling the statement up into the wrapper, so its
  expressions are evaluated once, in its own order (PostgreSQL, prepjointree.c
  `is_simple_subquery`: a subquery with LIMIT/OFFSET is never flattened). A subquery scan
  with no join, sort or aggregate above it returns the rows in the statement's order.

The size used is PostgreSQL's: `octet_length` (the raw length, never decompressed) for text
types and bytea, `pg_column_size` for the rest (for a value stored compressed in a table, its
compressed size). Statements that cannot be wrapped (EXPLAIN, SHOW, a SELECT of no columns) run
as checked; their sizes are counted on the decoded values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

# Fixed-size built-in types (pg_type.typlen > 0): never large, so never wrapped. Their JSON width
# is at most a few dozen bytes (timestamptz, name).
FIXED_TYPES = frozenset({
    16, 18, 19, 20, 21, 23, 26, 27, 28, 29, 600, 700, 701, 774, 790, 829, 1082, 1083, 1114, 1184,
    1186, 1266, 2278, 2950, 3220,
})
FIXED_WIDTH = 32
TEXT_TYPES = frozenset({25, 1042, 1043, 17})  # text, bpchar, varchar, bytea: octet_length
GT = "OPERATOR(pg_catalog.>)"
PLUS = "OPERATOR(pg_catalog.+)"
OMITTED_SIZE = 200  # what a value left in PostgreSQL counts for (its marker's length, about)


@dataclass(frozen=True)
class CappedQuery:
    """The wrapped statement: the user's columns (NULL when over the cap), the row's size, and
    the sizes of the columns in `sized` when one of them is over the cap (else NULL)."""

    sql: str
    width: int  # number of user columns
    sized: tuple[int, ...]  # indexes of the user columns whose size is measured
    max_value_bytes: int

    @property
    def fixed_size(self) -> int:
        """What the row's columns of fixed size and the separators add to the measured sizes."""
        return FIXED_WIDTH * (self.width - len(self.sized)) + self.width


_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|\(|/\*(?:[^*]|\*(?!/))*\*/)*", re.S)
_UTILITY_WORDS = frozenset({"explain", "show"})  # what a policy can allow besides queries


def is_query(sql: str) -> bool:
    """False when `sql` starts (after blanks, comments and parentheses) with EXPLAIN or SHOW,
    which cannot be read as a subquery. Anything else is wrapped: if it is not a query after
    all, the wrapped form fails to parse and the call fails cleanly (never runs uncapped)."""
    rest = sql[_LEADING.match(sql).end():]  # type: ignore[union-attr]  # the pattern matches ""
    word = re.match(r"[A-Za-z]+", rest)
    return word is None or word.group(0).lower() not in _UTILITY_WORDS


# Built-in types whose values are read as PostgreSQL's text (`numeric_out`, `uuid_out`): the
# very string pgmcp sends for them, decoded by asyncpg as a str with no Python work after.
# Chosen by OID, so only the built-in output functions run. numeric only while values are sent
# as strings (limits.decimal_as_float off); the executor says which.
AS_TEXT = {1700: "pg_catalog.text", 1231: "pg_catalog.text[]", 2950: "pg_catalog.text", 2951: "pg_catalog.text[]"}
NUMERIC_TYPES = frozenset({1700, 1231})


def wrap(
    sql: str, type_oids: Sequence[int], max_value_bytes: int, as_text: frozenset[int] = frozenset()
) -> CappedQuery | None:
    """The capped form of the checked query `sql` whose columns have `type_oids`; None when it
    is no query (`is_query`), has no columns, or no column needs it (all fixed-size). Columns
    whose type is in `as_text` (a subset of AS_TEXT) come back as PostgreSQL's text of them."""
    width = len(type_oids)
    if not is_query(sql):
        return None
    sized = tuple(i for i, oid in enumerate(type_oids) if oid not in FIXED_TYPES)
    if width == 0 or not sized:
        return None
    names = [f"c{i + 1}" for i in range(width)]
    sizes = {i: _size_expr(f"q.{names[i]}", type_oids[i]) for i in sized}
    cap = int(max_value_bytes)
    over = {i: f"{sizes[i]} {GT} {cap}" for i in sized}
    plain = [
        f"CAST(q.{names[i]} AS {AS_TEXT[oid]})" if (oid := type_oids[i]) in as_text else f"q.{names[i]}"
        for i in range(width)
    ]
    values = [f"CASE WHEN {over[i]} THEN NULL ELSE {plain[i]} END" if i in sizes else plain[i] for i in range(width)]
    total = f" {PLUS} ".join(
        f"CAST(CASE WHEN {over[i]} THEN {OMITTED_SIZE} ELSE COALESCE({sizes[i]}, 0) END AS pg_catalog.int8)"
        for i in sized
    )
    flagged = f"CASE WHEN {' OR '.join(over[i] for i in sized)} THEN ARRAY[{', '.join(sizes[i] for i in sized)}] END"
    select = ", ".join([*values, total, flagged])
    text = (
        f"SELECT {select}\nFROM (SELECT * FROM (\n{without_terminator(sql)}\n) AS s OFFSET 0) "
        f"AS q({', '.join(names)})"
    )
    return CappedQuery(text, width, sized, max_value_bytes)


def without_terminator(sql: str) -> str:
    """`sql` without trailing semicolons (and blanks). PostgreSQL parsed it alone, so a final
    `;` is a statement terminator or sits in a trailing `--` comment: dropping it changes
    nothing, while inside parentheses it would be a syntax error."""
    body = sql.rstrip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def _size_expr(ref: str, oid: int) -> str:
    if oid in TEXT_TYPES:
        return f"pg_catalog.octet_length({ref})"
    return f"pg_catalog.pg_column_size({ref})"


@dataclass
class Oversized:
    """A value left in PostgreSQL because it is larger than `max_value_bytes`."""

    column: str
    size: int
    limit: int

    def __str__(self) -> str:
        return (
            f"<value of column {self.column!r} omitted: {self.size} bytes, more than "
            f"max_value_bytes ({self.limit}); select a part of it (substring, ->, a slice) or its length>"
        )


def split_batch(
    records: Sequence[Any], capped: CappedQuery, names: Sequence[str]
) -> tuple[list[Sequence[Any]], list[int], list[str]]:
    """(each row's values with Oversized markers, each row's size estimate, columns omitted) for a
    fetched batch; C-level loops for the common batch, `split_row` only for a row with a value
    over the cap."""
    width = capped.width
    values: list[Sequence[Any]] = list(map(itemgetter(slice(0, width)), records))
    fixed = capped.fixed_size
    sizes = [size + fixed for size in map(itemgetter(width), records)]
    omitted: list[str] = []
    flags = list(map(itemgetter(width + 1), records))
    if flags.count(None) != len(flags):
        for index, flag in enumerate(flags):
            if flag is not None:
                values[index], _, columns = split_row(records[index], capped, names)
                omitted.extend(columns)
    return values, sizes, omitted


def split_row(record: Any, capped: CappedQuery, names: Sequence[str]) -> tuple[tuple[Any, ...], int, list[str]]:
    """(the user's values, with Oversized markers, the row's size estimate, columns omitted).
    The common row (no value over the cap) costs two look-ups."""
    width = capped.width
    sizes = record[width + 1]
    if sizes is None:
        return record[:width], record[width] + capped.fixed_size, []
    user = list(record[:width])
    omitted: list[str] = []
    for index, value_size in zip(capped.sized, sizes, strict=True):
        if value_size is not None and value_size > capped.max_value_bytes:
            user[index] = Oversized(names[index], value_size, capped.max_value_bytes)
            omitted.append(names[index])
    return tuple(user), record[width] + capped.fixed_size, omitted


def approx_size(values: Sequence[Any]) -> int:
    """A cheap size estimate for the rows of statements that are not wrapped."""
    total = 0
    for value in values:
        if isinstance(value, str | bytes | bytearray):
            total += len(value) + 3
        else:
            total += FIXED_WIDTH
    return total
