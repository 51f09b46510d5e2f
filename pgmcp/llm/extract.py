"""Pull the SQL out of a model's answer.

Models answer in many shapes despite the instructions: a ```sql fence (asked for), a plain
``` fence, a bare statement after some prose, or just the statement. The policy checker is
the judge of what comes out of here; this only decides which part of the text to hand it.
"""

from __future__ import annotations

import re

from pgmcp.errors import GenerationFailed

_SQL_FENCE = re.compile(
    r"```[ \t]*(?:sql|postgresql|postgres|pgsql|psql)[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I
)
_ANY_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)
# A statement starts at a line beginning with SELECT/WITH (optionally after "SQL:" or similar).
_BARE_START = re.compile(r"^[ \t]*(?:[A-Za-z ]{1,20}:[ \t]*)?((?:SELECT|WITH)\b.*)$", re.I | re.M)
# Prose after the statement: a line that starts like an English sentence, not like SQL.
_PROSE_LINE = re.compile(
    r"^(?:This|The|Note|Here|It|I|That|These|Explanation|Assuming|If|We|You)\b[^;]*$", re.I
)


def extract_sql(text: str) -> str:
    """Return the SQL statement in `text`.

    Preference order: the first ```sql fenced block; the first plain fenced block; a bare
    statement starting at a line that begins with SELECT or WITH and running to the end, a
    blank line, or a line of prose; otherwise the whole text, stripped. Raises
    `GenerationFailed` when nothing is left.
    """
    for pattern in (_SQL_FENCE, _ANY_FENCE):
        match = pattern.search(text)
        if match and match.group(1).strip():
            return _clean(match.group(1))
    bare = _BARE_START.search(text)
    if bare:
        start = bare.start(1)
        lines = text[start:].split("\n")
        kept: list[str] = []
        for line in lines:
            if not line.strip() or (kept and _PROSE_LINE.match(line.strip())):
                break
            kept.append(line)
            if line.rstrip().endswith(";"):
                break
        return _clean("\n".join(kept))
    # Whole text, minus any stray fence lines (an empty ```sql block is not SQL).
    sql = _clean("\n".join(line for line in text.split("\n") if not line.strip().startswith("```")))
    if not sql:
        raise GenerationFailed("the model returned an empty answer", hint="ask the question again")
    return sql


def _clean(sql: str) -> str:
    sql = sql.strip()
    # One trailing semicolon is noise; more than one statement is the checker's business.
    if sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql
