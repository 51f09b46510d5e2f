"""The built-in function sets: dangerous (never allowed) and safe (allowed without a rule).

Both live as plain text under `pgmcp/policy/data/` so that a reviewer can read, diff and
extend them without touching code. The dangerous set holds names and globs matched against
the bare, case-folded function name in any schema; the safe set holds exact pg_catalog names.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources


def _read_list(filename: str) -> tuple[str, ...]:
    text = resources.files("pgmcp.policy").joinpath("data", filename).read_text(encoding="utf-8")
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return tuple(out)


@dataclass(frozen=True)
class FunctionSets:
    """The dangerous patterns (exact names plus globs) and the safe names."""

    dangerous_exact: frozenset[str]
    dangerous_globs: tuple[str, ...]
    dangerous_regex: re.Pattern[str] | None
    safe: frozenset[str]

    def is_dangerous(self, name: str) -> bool:
        """True when `name` (already case-folded as PostgreSQL would) is in the dangerous set."""
        if name in self.dangerous_exact:
            return True
        # Compare lower-cased too: a quoted "PG_SLEEP" is not pg_sleep for PostgreSQL, but
        # refusing it costs nothing and keeps lookalikes out.
        low = name.lower()
        if low in self.dangerous_exact:
            return True
        return bool(self.dangerous_regex and self.dangerous_regex.match(low))

    def is_safe(self, name: str) -> bool:
        return name in self.safe


@cache
def function_sets() -> FunctionSets:
    """Load the data files once."""
    dangerous = _read_list("dangerous_functions.txt")
    exact = frozenset(p for p in dangerous if not any(c in p for c in "*?["))
    globs = tuple(p for p in dangerous if p not in exact)
    regex = re.compile("|".join(_glob_regex(g) for g in globs)) if globs else None
    return FunctionSets(exact, globs, regex, frozenset(_read_list("safe_functions.txt")))


@cache
def pg_catalog_relations() -> frozenset[str]:
    """Relation names of pg_catalog (PostgreSQL 15), which unqualified names resolve to first."""
    return frozenset(_read_list("pg_catalog_relations.txt"))


@cache
def pg_catalog_functions() -> frozenset[str]:
    """Function names of pg_catalog (PostgreSQL 15), which unqualified calls resolve to first."""
    return frozenset(_read_list("pg_catalog_functions.txt"))


def _glob_regex(glob: str) -> str:
    # fnmatch.translate gives an anchored pattern; wrap it so the union stays correct.
    return f"(?:{fnmatch.translate(glob)})"

