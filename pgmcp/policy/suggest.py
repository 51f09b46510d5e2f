"""Did-you-mean for unknown tables and columns, from the names the policy lets the caller see.

PostgreSQL hints at the column a misspelt name probably meant (`errorMissingColumn` in
src/backend/parser/parse_relation.c, via `updateFuzzyAttrMatchState`): the candidates at the
smallest Levenshtein distance (insertion, deletion and substitution costing 1 each), and
none when more than half of the name's characters would have to change. pgmcp does the
same for columns and, where PostgreSQL gives no hint, for tables.

Only names the policy shows are ever suggested: a hint naming a hidden table or column would
leak that it exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.schema.snapshot import SchemaSnapshot

MAX_SUGGESTIONS = 3
# PostgreSQL's message for an unknown relation (parserOpenTable in parse_relation.c).
_MISSING_RELATION = re.compile(r'^relation "(?P<name>[^"]+)" does not exist')


def distance(a: str, b: str) -> int:
    """The Levenshtein distance between `a` and `b` (PostgreSQL's `varstr_levenshtein`, unit costs)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest(name: str, candidates: Iterable[str]) -> list[str]:
    """The candidates nearest to `name` (all at the smallest distance, at most MAX_SUGGESTIONS).

    As PostgreSQL: nothing when more than half of `name`'s characters differ (for a dotted
    name, half of its longest part: `public.nothing` is not `public.orders`); the name itself
    is never a suggestion. Case is ignored when measuring, so `Orders` finds `orders`.
    """
    limit = max(len(part) for part in name.split(".")) // 2
    best: list[str] = []
    best_distance = limit + 1
    for candidate in sorted(set(candidates)):
        if candidate == name:
            continue
        d = distance(name.lower(), candidate.lower())
        if d > limit:
            continue
        if d < best_distance:
            best, best_distance = [candidate], d
        elif d == best_distance:
            best.append(candidate)
    return best[:MAX_SUGGESTIONS]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """` (did you mean "x"?)` (or `"x" or "y"`), or "" when nothing is close."""
    found = closest(name, candidates)
    if not found:
        return ""
    return " (did you mean " + " or ".join(f'"{c}"' for c in found) + "?)"


def relation_suggestions(unknown: Iterable[str], snapshot: SchemaSnapshot) -> dict[str, list[str]]:
    """For each unknown relation name, the closest names in `snapshot` (`schema.name` for a
    qualified name, else bare names), leaving out names with none. Pass the policy-filtered
    snapshot (`pgmcp.schema.filtered.filter_snapshot`): what it lacks is never offered."""
    qualified = [r.qualified_name for r in snapshot.relations]
    bare = [r.name for r in snapshot.relations]
    out: dict[str, list[str]] = {}
    for name in unknown:
        if found := closest(name, qualified if "." in name else bare):
            out[name] = found
    return out


def visible_tables(snapshot: SchemaSnapshot, policy: CompiledPolicy) -> list[str]:
    """The relations the policy shows, named as a query on its search path would name them."""
    path = policy.search_path
    return [
        r.name if r.schema in path else r.qualified_name
        for r in snapshot.relations
        if policy.table_visible(r.schema, r.name)
    ]


def table_hint(name: str, snapshot: SchemaSnapshot | None, policy: CompiledPolicy) -> str:
    """The did-you-mean for a relation `name` (bare or schema-qualified) that does not exist."""
    if snapshot is None:
        return ""
    if "." in name:  # compare qualified with qualified
        visible = [r.qualified_name for r in snapshot.relations if policy.table_visible(r.schema, r.name)]
    else:
        visible = visible_tables(snapshot, policy)
    if name in visible:
        return ""  # it exists: something else is wrong with the reference (a database prefix)
    return did_you_mean(name, visible)


def column_hint(
    name: str, tables: Iterable[tuple[str, str]], snapshot: SchemaSnapshot | None, policy: CompiledPolicy
) -> str:
    """The did-you-mean for a column `name` no table of the query has, from the visible
    columns of `tables` (the (schema, table) pairs the query reads)."""
    if snapshot is None:
        return ""
    candidates: list[str] = []
    for schema, table in tables:
        info = snapshot.relation(schema, table)
        if info is not None and policy.table_visible(schema, table):
            candidates += [c.name for c in info.columns if policy.column_visible(schema, table, c.name)]
    return did_you_mean(name, candidates)


def missing_relation_hint(message: str, snapshot: SchemaSnapshot | None, policy: CompiledPolicy) -> str | None:
    """For PostgreSQL's `relation "x" does not exist` (a name the checker let through because
    it was schema-qualified), the did-you-mean as a hint; None when there is nothing to say."""
    found = _MISSING_RELATION.match(message)
    if found is None:
        return None
    hint = table_hint(found["name"], snapshot, policy)
    return hint.strip(" ()") + " (call describe_schema to see the tables)" if hint else None
