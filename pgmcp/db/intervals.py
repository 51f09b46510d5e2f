"""PostgreSQL intervals, exactly: (months, days, microseconds) and their ISO 8601 text.

asyncpg's default interval codec folds a month into 30 days, which would turn `1 year` into
`P360D`; `pgmcp.db.serialize.install_codecs` installs `decode`/`encode` below instead, so an
interval arrives as a `PgInterval` holding the three fields PostgreSQL stores. Its text is the
one PostgreSQL prints with `IntervalStyle = iso_8601` (EncodeInterval, INTSTYLE_ISO_8601 in
src/backend/utils/adt/datetime.c).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

USECS_PER_SEC = 1_000_000
USECS_PER_MIN = 60 * USECS_PER_SEC
USECS_PER_HOUR = 60 * USECS_PER_MIN
USECS_PER_DAY = 24 * USECS_PER_HOUR


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
    hours, rest = _trunc_div(microseconds, USECS_PER_HOUR)
    mins, rest = _trunc_div(rest, USECS_PER_MIN)
    secs, fsec = _trunc_div(rest, USECS_PER_SEC)
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
    total = (value.days * 86_400 + value.seconds) * USECS_PER_SEC + value.microseconds
    days, rest = _trunc_div(total, USECS_PER_DAY)
    return interval_iso8601(0, days, rest)


def decode(value: tuple[int, int, int]) -> PgInterval:
    """asyncpg's `tuple` format of an interval -> PgInterval."""
    months, days, microseconds = value
    return PgInterval(months, days, microseconds)


def encode(value: PgInterval | dt.timedelta) -> tuple[int, int, int]:
    """A PgInterval (or timedelta) -> asyncpg's `tuple` format of an interval."""
    if isinstance(value, PgInterval):
        return (value.months, value.days, value.microseconds)
    return (0, value.days, value.seconds * USECS_PER_SEC + value.microseconds)
