"""Function calls by the name the user spelled, folded and schema-qualified (ParseFuncOrColumn).

Every call node, typed or not, gets the name the user spelled (sqlglot's typed
classes lose it; the name token's offsets in `node.meta` recover it) and its schema if
qualified. Attribute notation `(x).f` is a call of `f` too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlglot import exp

from pgmcp.policy.analysis.names import fold, plain


@dataclass(frozen=True)
class FunctionRef:
    """One function call: folded name, schema if the call was qualified, and where it is."""

    node: exp.Expr
    schema: str | None
    name: str
    start: int | None  # offset of the name in the parsed text
    # Written as a quoted identifier ("coalesce"(...)): a real function call even where the
    # unquoted word is SQL syntax.
    quoted: bool = False


# -- functions ---------------------------------------------------------------------------------

# Typed sqlglot classes built by special parsers carry no name token; what they stand for.
# None marks SQL syntax that is not a function call in PostgreSQL (casts, CASE, operators).
SYNTAX_CLASSES: dict[str, str | None] = {
    "Cast": None,
    "TryCast": None,
    "Case": None,
    "If": None,
    "Extract": "extract",
    "RegexpLike": None,
    "RegexpILike": None,
    "JSONExtract": None,
    "JSONExtractScalar": None,
    "JSONBExtract": None,
    "JSONBExtractScalar": None,
    "JSONBContains": None,
    "Array": None,
    "Bracket": None,
    "CurrentTimestamp": "current_timestamp",
    "CurrentDate": "current_date",
    "CurrentTime": "current_time",
    "CurrentUser": "current_user",
    "Substring": "substring",
    "Trim": "btrim",
    "StrPosition": "position",
    "GroupConcat": "string_agg",
    "Unnest": "unnest",
    "AtTimeZone": None,
    "Collate": None,
    "ArrayContainsAll": None,
    "ArrayContainedBy": None,
    "ArrayOverlaps": None,
    "Overlay": "overlay",
    "ArrayAgg": "array_agg",
    "Exists": None,
    "Any": None,
    "All": None,
    "Struct": None,
    "Interval": None,
    "Coalesce": "coalesce",
    "MatchAgainst": None,  # the @@ text-search operator
    "JSONArrayAgg": "json_agg",
    "ParseJSON": None,  # the typed literal json '...' (a cast); a spelled parse_json(...) keeps its name
    "XMLTable": "xmltable",  # XPath over a document: not in the safe set (CPU-heavy XML parsing)
}

# Names PostgreSQL's grammar reserves for syntax when written unquoted and unqualified (reserved or
# "cannot be function" keywords, kwlist.h): such a spelling is never a call of a function by that
# name, whatever the schema holds. None: nothing is called (the arguments are still checked, they
# are separate nodes); a str: the pg_catalog function PostgreSQL calls for it. Quoted or qualified,
# the same name is an ordinary call and keeps its name. JSON_ARRAY and JSON_ARRAYAGG are keywords
# from PostgreSQL 16; on 15 an unquoted call resolves like any name, the same trust the safe set
# already places in unqualified names (no user function shadows them on the search path).
KEYWORD_CALLS: dict[str, str | None] = {
    "row": None,  # ROW(...) row constructor
    "array": None,  # ARRAY(subquery)
    "all": None,  # x op ALL (array)
    "any": None,
    "some": None,
    "grouping": None,  # GROUPING(a, b): a bitmask of the grouping set, evaluated by the executor
    "xmlattributes": None,  # a clause of XMLELEMENT
    "xmlconcat": None,  # XML constructors: no function, no XPath (the arguments' casts are casts)
    "xmlforest": None,
    "json_array": "json_build_array",
    "json_arrayagg": "json_agg",
}


OPERATOR_CLASSES = (exp.Connector, exp.Binary, exp.Unary, exp.Predicate)


def is_attribute_notation(node: exp.Dot) -> bool:
    """`(expr).name`, or any later `.name` of `(expr).a.name`: a field selection or name(expr).

    PostgreSQL applies each `.name` after a parenthesised expression in turn (transformIndirection),
    so `(2.0).abs.pg_sleep` is pg_sleep(abs(2.0)). A Dot over plain names (`schema.f()`) is not.
    """
    if not isinstance(node.expression, exp.Identifier):
        return False
    base = node.this
    while isinstance(base, exp.Dot):
        base = base.this
    return not isinstance(base, exp.Identifier)


def function_refs(calls: Iterable[exp.Expr], text: str, fields: Collection[int] = ()) -> list[FunctionRef]:
    """Every function call among `calls` (a tree's `exp.Func` and `exp.Dot` nodes, as
    `pgmcp.policy.nodes` lists them; the tree was parsed from `text`), with its spelled name.

    `fields` holds the ids of attribute-notation Dots proven to be field selections
    (`pgmcp.policy.analysis`): they call nothing.
    """
    out: list[FunctionRef] = []
    for node in calls:
        if isinstance(node, exp.Func):
            ref = _function_ref(node, text)
            if ref is not None:
                out.append(ref)
        elif isinstance(node, exp.Dot) and is_attribute_notation(node) and id(node) not in fields:
            # `(expr).name` is attribute notation: a field of a composite or a call name(expr).
            ident = node.expression
            meta = ident.meta if ident._meta else {}
            out.append(FunctionRef(node, None, fold(ident), meta.get("start")))
    return out


def _function_ref(node: exp.Func, text: str) -> FunctionRef | None:
    schema = _call_schema(node)
    meta = node.meta if node._meta else {}
    start = meta.get("start")
    if isinstance(node, exp.Anonymous):
        this = node.this
        if isinstance(this, exp.Identifier):
            return FunctionRef(node, schema, fold(this), start, quoted=bool(this.args.get("quoted")))
        return _keyword_or_call(node, schema, str(this).lower(), start)
    if start is not None and "end" in meta:
        spelled = text[int(start) : int(meta["end"]) + 1]
        if spelled.startswith('"') and spelled.endswith('"') and len(spelled) > 1:
            return FunctionRef(node, schema, spelled[1:-1].replace('""', '"'), start, quoted=True)
        if plain(spelled.lower()):
            if isinstance(node, exp.Second) and isinstance(node.parent, (exp.Interval, exp.IntervalSpan)):
                return None  # interval '1.5' second(2): the field's precision, not a call
            return _keyword_or_call(node, schema, spelled.lower(), start)
    if isinstance(node, (exp.XMLElement, exp.JSONObjectAgg, exp.JSONObject)):
        return _name_token_call(node, schema, text)
    if isinstance(node, OPERATOR_CLASSES):
        # Operator syntax (AND, OR, ^, ?, @>, ->...) parsed into a typed node without a name
        # token: an operator, not a function call the user named.
        return None
    cls = type(node).__name__
    if cls in SYNTAX_CLASSES:
        mapped = SYNTAX_CLASSES[cls]
        return None if mapped is None else FunctionRef(node, schema, mapped, start)
    # Unknown typed node without a usable name token: name it so the policy decides (and an
    # unlisted one is refused as unknown, never passed).
    return FunctionRef(node, schema, f"{node.sql_name().lower()}", start)


def _keyword_or_call(node: exp.Expr, schema: str | None, name: str, start: int | None) -> FunctionRef | None:
    """An unquoted name: PostgreSQL syntax when unqualified and in KEYWORD_CALLS, else a call."""
    if schema is None and name in KEYWORD_CALLS:
        mapped = KEYWORD_CALLS[name]
        return None if mapped is None else FunctionRef(node, None, mapped, start)
    return FunctionRef(node, schema, name, start)


# XMLELEMENT(NAME n, ...) and JSON_OBJECTAGG(k : v | k VALUE v ...) are syntax, but sqlglot builds
# the same meta-less node from the ordinary calls "xmlelement"(x) and json_objectagg(k, v) (a user
# function by that name). What tells them apart is in the text around the first argument.
# JSON_OBJECT(k : v) is SQL/JSON (PostgreSQL calls json_build_object); json_object(a, b), quoted
# or not, is pg_catalog.json_object.
_NAME_TOKEN = re.compile(r'(?:([A-Za-z_][A-Za-z0-9_$]*)|"((?:[^"]|"")*)")\s*\(\s*$')


def _name_token_call(
    node: exp.XMLElement | exp.JSONObjectAgg | exp.JSONObject, schema: str | None, text: str
) -> FunctionRef | None:
    first = _first_offset(node.this if isinstance(node, exp.XMLElement) else node)
    key_values = bool(node.expressions) and all(_key_value_form(kv, text) for kv in node.expressions)
    if isinstance(node, exp.JSONObject):
        return FunctionRef(node, schema, "json_build_object" if key_values else "json_object", first)
    keyword = "xmlelement" if isinstance(node, exp.XMLElement) else "json_objectagg"
    syntax = False
    start = first
    if first is not None:
        before = text[max(0, first - 200) : first]
        if isinstance(node, exp.XMLElement):
            head = before.rstrip()
            syntax = head[-4:].lower() == "name" and not _word_char(head[-5:-4])
            before = head[:-4] if syntax else before
        else:
            syntax = key_values
        found = _NAME_TOKEN.search(before)
        syntax = syntax and found is not None and (found.group(1) or "").lower() == keyword
        if found is not None:
            start = max(0, first - 200) + found.start()
    if syntax and schema is None:
        return None if keyword == "xmlelement" else FunctionRef(node, None, "json_object_agg", start)
    # A quoted, qualified or unrecognised spelling: an ordinary call of a function by that name.
    return FunctionRef(node, schema, keyword, start)


def _key_value_form(kv: exp.Expr, text: str) -> bool:
    """`k : v` or `k VALUE v` (SQL/JSON), not `k, v` (two arguments of an ordinary call)."""
    if not isinstance(kv, exp.JSONKeyValue) or kv.this is None or kv.expression is None:
        return False
    key_end = max((int(m["end"]) for m in _metas(kv.this) if "end" in m), default=None)
    value_start = _first_offset(kv.expression)
    if key_end is None or value_start is None or value_start <= key_end:
        return False
    gap = text[key_end + 1 : value_start].strip().lower()
    return gap.startswith(":") or (gap.startswith("value") and not _word_char(gap[5:6]))


def _metas(node: exp.Expr) -> list[dict[str, int]]:
    return [sub.meta for sub in node.walk() if sub._meta and "start" in sub.meta]


def _first_offset(node: exp.Expr | None) -> int | None:
    if node is None:
        return None
    return min((int(m["start"]) for m in _metas(node)), default=None)


def _word_char(ch: str) -> bool:
    return bool(ch) and (ch.isalnum() or ch in "_$")


def _call_schema(node: exp.Expr) -> str | None:
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        qualifier = parent.this
        if isinstance(qualifier, exp.Dot):  # db.schema.f(): the schema is the last part
            qualifier = qualifier.expression
        return fold(qualifier) if isinstance(qualifier, (exp.Identifier, exp.Column, exp.Var)) else "?"
    if isinstance(parent, exp.Table) and parent.this is node and parent.args.get("db"):
        return fold(parent.args["db"])
    return None
