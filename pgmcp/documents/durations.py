"""Durations as people write them in YAML: "30s", "10m", "1h", "500ms", "1h30m", or seconds.

Everything in pgmcp stores durations as float seconds. A bare number (or a numeric string,
which is what an expanded `${VAR}` gives) is a number of seconds.
"""

from __future__ import annotations

import re

from pgmcp.errors import ConfigError, DocumentError, SourceLocation

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")
# Also used (as a JSON Schema pattern) in schemas/*.schema.json: keep them in step.
DURATION_PATTERN = rf"^\s*(?:{_NUMBER}|(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+)\s*$"
_DURATION = re.compile(DURATION_PATTERN)

HINT = 'write a number with a unit, e.g. "500ms", "30s", "10m", "1h", "1h30m", or a number of seconds'


def parse_duration(
    value: object,
    location: SourceLocation,
    *,
    error: type[DocumentError] = ConfigError,
) -> float:
    """Return `value` (a duration string or a number of seconds) in seconds.

    Durations must be positive: a zero timeout means "no timeout" to PostgreSQL, which is
    never what a limit in pgmcp should silently become. Raises `error` at `location`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise error(f"expected a duration, got {type(value).__name__}", location, hint=HINT)
    if isinstance(value, str):
        if not _DURATION.match(value):
            raise error(f"{value!r} is not a duration", location, hint=HINT)
        text = value.strip()
        if re.fullmatch(_NUMBER, text):
            seconds = float(text)
        else:
            seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
    else:
        seconds = float(value)
    if seconds <= 0:
        raise error(f"duration must be greater than zero, got {value!r}", location, hint=HINT)
    return seconds
