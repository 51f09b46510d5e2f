"""Row filters parameterised by the caller's identity claims: `tenant_id = :tenant_id`.

A row-filter condition may name a claim of the principal's token as `:name`. `bind_claims`
gives the principal's own `CompiledPolicy`: every `:name` is replaced *in the syntax tree* by
a literal node of the claim's type (a number, a string, TRUE/FALSE; a list where the
condition takes one, `x IN (:names)` or `x = ANY(:names)`), and the tree is generated back to
text and parsed again to prove the text means exactly that tree: the value can never become
SQL. Strings are PostgreSQL string literals, read with standard_conforming_strings on (the
pools pin it), so a quote or a backslash in a claim is just a character.

A claim that is missing (or null), or of the wrong shape (an object; a list where one value
is needed; an empty list), never turns into "no filter": the table is denied for that
principal, with the claim named in the reason (`[access_denied]` at the tool), and views
over it and inheritance children are refused by the usual rules. Bound policies are cached
per base policy and per value of the claims the filters use.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, cast

import sqlglot
from cachetools import LRUCache
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.errors import AccessDenied
from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.conditions import claim_name
from pgmcp.policy.spec import RowFilter, TableRule
from pgmcp.policy.verdict import Verdict

CACHE_SIZE = 1024
CLAIM_MARK = "needs claim"  # in the key_path of the deny rule standing for an unbindable filter


@dataclasses.dataclass(frozen=True)
class Unbound:
    """A row filter that could not be bound for this principal: the table is denied."""

    table: str
    claim: str
    problem: str  # "is missing from the token", "must be one value, not a list", ...

    def message(self) -> str:
        return (f"the row filter of {self.table} needs claim '{self.claim}', which {self.problem}; "
                f"{self.table} cannot be read without it")


def claim_names(condition: str) -> tuple[str, ...]:
    """The claims a condition names (`:name`), in order, without repeats."""
    try:
        tree = sqlglot.parse_one(condition, read="postgres")
    except SqlglotError:
        return ()
    names = [n for p in tree.find_all(exp.Placeholder) if (n := claim_name(p)) is not None]
    return tuple(dict.fromkeys(names))


def wants_list(placeholder: exp.Placeholder) -> bool:
    """True where PostgreSQL takes a list: `x IN (:p)` (alone in the list) or `ANY/ALL(:p)`."""
    parent = placeholder.parent
    if isinstance(parent, exp.In) and len(parent.expressions) == 1:
        return True
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return isinstance(parent, (exp.Any, exp.All))


def _scalar(value: Any) -> exp.Expression | None:
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return cast(exp.Expression, exp.convert(value))
    if isinstance(value, str) and "\x00" not in value:
        return exp.Literal.string(value)
    return None


def _problem(value: Any, listy: bool) -> str | None:
    if value is None:
        return "is missing from the token"
    if listy:
        if not isinstance(value, (list, tuple)):
            return None if _scalar(value) is not None else "must be a value or a list of values"
        if not value:
            return "is an empty list"
        if any(_scalar(v) is None for v in value):
            return "must be a list of strings, numbers or booleans"
        return None
    if isinstance(value, (list, tuple, dict)):
        return "must be one value (a string, number or boolean), not a list or an object"
    return None if _scalar(value) is not None else "must be a string, a number or a boolean"


def _text(tree: exp.Expr) -> str:
    # As the checker's rewrites generate SQL: function names as written ("MyFunc" stays quoted).
    return tree.sql(dialect="postgres", normalize_functions=False, comments=False)


def bind_condition(condition: str, claims: Mapping[str, Any]) -> tuple[str, tuple[str, str] | None]:
    """(bound condition text, None) or (condition, (claim, problem)) when a claim cannot be bound."""
    tree = sqlglot.parse_one(condition, read="postgres")
    placeholders = [p for p in tree.find_all(exp.Placeholder)]
    if not placeholders:
        return condition, None
    for placeholder in placeholders:
        name = claim_name(placeholder)
        if name is None:
            return condition, (placeholder.sql(dialect="postgres"), "is not a claim (write :claim_name)")
        listy = wants_list(placeholder)
        value = claims.get(name)
        problem = _problem(value, listy)
        if problem is not None:
            return condition, (name, problem)
        if listy:
            items = [_scalar(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if isinstance(placeholder.parent, exp.In):
                placeholder.parent.set("expressions", items)
            else:
                placeholder.replace(exp.Array(expressions=items))
        else:
            literal = _scalar(value)
            assert literal is not None
            placeholder.replace(literal)
    text = _text(tree)
    if sqlglot.parse_one(text, read="postgres") != tree:
        return condition, (str(placeholders[0].this), "cannot be written as an SQL literal that reads back the same")
    return text, None


def bind_spec_filters(policy: CompiledPolicy, claims: Mapping[str, Any]) -> tuple[CompiledPolicy, tuple[Unbound, ...]]:
    """The policy for a principal with `claims` (see the module docstring), and what could not be bound."""
    filters: list[RowFilter] = []
    denies: list[TableRule] = []
    unbound: list[Unbound] = []
    for rf in policy.spec.row_filters:
        try:
            text, problem = bind_condition(rf.condition, claims)
        except SqlglotError:
            text, problem = rf.condition, None  # the checker reports a filter that does not parse
        if problem is None:
            filters.append(dataclasses.replace(rf, condition=text) if text != rf.condition else rf)
            continue
        missing = Unbound(rf.table, problem[0], problem[1])
        unbound.append(missing)
        where = dataclasses.replace(
            rf.source, key_path=f"row_filters.{rf.table} {CLAIM_MARK} '{missing.claim}', which {missing.problem}")
        denies.append(TableRule(rf.table, "deny", where))
    if not unbound and all(f is g for f, g in zip(filters, policy.spec.row_filters, strict=True)):
        return policy, ()
    spec = dataclasses.replace(policy.spec, row_filters=tuple(filters), tables=policy.spec.tables + tuple(denies))
    return compile_policy(spec), tuple(unbound)


def refuse_unbound(verdict: Verdict, unbound: tuple[Unbound, ...]) -> None:
    """Raise `[access_denied]` naming the claim when `verdict` refused a table (or a view over
    it, or a child of it) because its filter's claim could not be bound."""
    for v in verdict.violations:
        if v.source is not None and CLAIM_MARK in v.source.key_path:
            table = v.source.key_path.split()[0].removeprefix("row_filters.")
            found = next((u for u in unbound if u.table == table), unbound[0])
            raise AccessDenied(found.message(), hint="use a token that carries the claim, or query other tables")


def plannable(policy: CompiledPolicy) -> CompiledPolicy:
    """`policy` with every claim parameter replaced by NULL: for planning a filter (check-config
    --connect proves its columns and operators exist) without anyone's claims."""
    filters = []
    for rf in policy.spec.row_filters:
        if not claim_names(rf.condition):
            filters.append(rf)
            continue
        tree = sqlglot.parse_one(rf.condition, read="postgres")
        for placeholder in list(tree.find_all(exp.Placeholder)):
            placeholder.replace(exp.null())
        filters.append(dataclasses.replace(rf, condition=_text(tree)))
    return compile_policy(dataclasses.replace(policy.spec, row_filters=tuple(filters)))


class ClaimBinder:
    """Bound policies of one base policy, cached per value of the claims its filters name."""

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy
        self.names = tuple(dict.fromkeys(n for rf in policy.spec.row_filters for n in claim_names(rf.condition)))
        self._cache: LRUCache[str, tuple[CompiledPolicy, tuple[Unbound, ...]]] = LRUCache(CACHE_SIZE)

    def bind(self, claims: Mapping[str, Any]) -> tuple[CompiledPolicy, tuple[Unbound, ...]]:
        if not self.names:
            return self.policy, ()
        key = json.dumps({n: claims.get(n) for n in self.names}, sort_keys=True, default=repr)
        hit = self._cache.get(key)
        if hit is None:
            hit = bind_spec_filters(self.policy, claims)
            self._cache[key] = hit
        return hit
