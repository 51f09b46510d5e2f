"""Rows as a small plain-text table for the terminal (`pgmcp ask`, the demo's tour).

Values are shown as JSON-safe results come back from the executor: None as an empty cell,
strings as they are, everything else through `json.dumps`. Long cells are shortened with an
ellipsis so that one wide column does not wrap every line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

MAX_CELL = 40


def cell(value: object, max_width: int = MAX_CELL) -> str:
    """One value as table text, at most `max_width` characters, on one line."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def render_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, limit: int | None = None, indent: str = ""
) -> str:
    """`columns` and `rows` as an aligned table with a header rule; at most `limit` rows, then
    a line saying how many more there are. Numbers are right-aligned."""
    shown = list(rows if limit is None else rows[:limit])
    texts = [[cell(v) for v in row] for row in shown]
    widths = [len(c) for c in columns]
    for row in texts:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        bool(shown) and all(isinstance(row[i], int | float) and not isinstance(row[i], bool)
                            for row in shown if row[i] is not None)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return (indent + " | ".join(parts)).rstrip()

    out = [line(list(columns)), indent + "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in texts]
    hidden = len(rows) - len(shown)
    if hidden > 0:
        out.append(f"{indent}... {hidden} more row{'s' if hidden != 1 else ''}")
    noun = "row" if len(rows) == 1 else "rows"
    out.append(f"{indent}({len(rows)} {noun})")
    return "\n".join(out)
