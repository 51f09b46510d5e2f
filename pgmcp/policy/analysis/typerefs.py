"""Type references that name relations: row types (`NULL::secrets`) and regclass/regtype values.

Every table, view and catalog relation has a row type of the same name (heap.c,
AddNewRelationType), so `NULL::secrets` with `json_populate_record` lists the hidden table's
columns, and `'secrets'::regclass` tells whether it exists and its OID. A type name resolves as
relation names do: pg_catalog first, then the search path (namespace.c, TypenameGetTypid).

A string literal is untyped (`unknown`) until the expression around it gives it a type: next
to a regclass/regtype value, in `=`, `IN`, `ANY`, `CASE`, `COALESCE`, `UNION` and the like,
PostgreSQL resolves it to that type (parse_coerce.c, select_common_type; parse_oper.c) and
reads it with regclassin/regtypein, which looks the name up: `pg_typeof(1) = 'secrets'` fails
when no relation `secrets` exists. `implicit_refs` judges such literals as the names they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.policy.analysis.names import candidate_schemas, fold
from pgmcp.schema.snapshot import SchemaSnapshot

TypeRefKind = Literal["row_type", "regclass", "regtype", "reg_value"]
# reg* types whose value from an arbitrary OID or expression names relations or types.
REG_LOOKUPS = {"regclass": "pg_class", "regtype": "pg_type"}


@dataclass(frozen=True)
class TypeRef:
    """A reference to a relation through the type system.

    `row_type`/`regclass`/`regtype`: `name` in one of the `candidates` schemas (a relation);
    `reg_value`: a regclass/regtype computed from something other than a literal name, which
    can name any relation (`catalog` is the catalog that would list the same names).
    """

    kind: TypeRefKind
    node: exp.Expr
    name: str
    candidates: tuple[str, ...]
    catalog: str = ""
    implicit: bool = False  # an untyped string literal that meets a regclass/regtype value


def type_refs(
    nodes: Iterable[exp.Expr], search_path: tuple[str, ...], snapshot: SchemaSnapshot | None
) -> list[TypeRef]:
    """Every type reference among `nodes` (a tree's `exp.DataType`, `exp.Cast` and
    `exp.Anonymous` nodes, as `pgmcp.policy.nodes` lists them) that names, or may name, a relation."""
    out: list[TypeRef] = []
    for node in nodes:
        if isinstance(node, exp.DataType):
            parts = _type_name(node)
            if parts is not None and parts[-1] not in REG_LOOKUPS:
                ref = _relation_type("row_type", node, parts, search_path, snapshot)
                if ref is not None:
                    out.append(ref)
            continue
        reg = _reg_kind(node)
        if reg is None:
            continue
        operand = node.this if isinstance(node, exp.Cast) else (node.expressions[0] if node.expressions else None)
        if isinstance(operand, exp.Literal) and operand.is_string:
            named = _name_in_string(str(operand.this), reg)
            if named is None:
                continue  # a built-in type name ('int4'::regtype)
            if not named:
                out.append(TypeRef(reg, node, str(operand.this), ()))
                continue
            ref = _relation_type(reg, node, named, search_path, snapshot, require=reg == "regclass")
            if ref is not None:
                out.append(ref)
        else:
            out.append(TypeRef("reg_value", node, reg, (), REG_LOOKUPS[reg]))
    return out


# Functions whose result is a regclass or regtype value (pg_proc.prorettype).
REG_RESULTS = {"pg_typeof": "regtype", "to_regclass": "regclass", "to_regtype": "regtype"}
# String literal forms PostgreSQL gives no type of their own: 'x', E'x', U&'x', $$x$$, N'x'.
UNTYPED_STRINGS = (exp.Literal, exp.ByteString, exp.UnicodeString, exp.RawString, exp.National)


def reg_kinds(types: Iterable[exp.Expr], called: Iterable[str], column_kinds: Iterable[str]) -> set[str]:
    """The reg types ("regclass", "regtype") whose values a statement makes: by a cast of any
    operand, by a call of a function returning one (`called`: folded names), or by reading a
    column of that type (`column_kinds`: `SchemaSnapshot.reg_columns` of the columns read)."""
    kinds: set[str] = set(column_kinds)
    for node in types:
        if not isinstance(node, exp.DataType):
            reg = _reg_kind(node)
            if reg is not None:
                kinds.add(reg)
    kinds.update(REG_RESULTS[name] for name in called if name in REG_RESULTS)
    return kinds


def implicit_refs(
    tree: exp.Expr, kinds: set[str], search_path: tuple[str, ...], snapshot: SchemaSnapshot | None
) -> list[TypeRef]:
    """Untyped string literals of `tree` read as names of the reg types in `kinds` (the module
    doc): each that would name a relation. A literal cast to a type of its own is typed; one
    that names nothing, or cannot be read as a name, tells nothing pgmcp hides."""
    out: list[TypeRef] = []
    for node in tree.find_all(*UNTYPED_STRINGS):
        if isinstance(node, exp.Literal) and not node.is_string:
            continue
        if isinstance(node.parent, (exp.Cast, exp.Interval)) and node.arg_key == "this":
            continue
        escaped = "\\" in str(node.this) or bool(node.args.get("escape"))
        if isinstance(node, (exp.ByteString, exp.UnicodeString)) and escaped:
            # E'...' and U&'...' escapes: the name PostgreSQL reads is not the text written
            out.append(TypeRef(sorted(kinds)[0], node, str(node.this), (), implicit=True))  # type: ignore[arg-type]
            continue
        for reg in sorted(kinds):
            named = _name_in_string(str(node.this), reg)
            if not named:
                continue
            ref = _relation_type(reg, node, named, search_path, snapshot)  # type: ignore[arg-type]
            if ref is not None and ref.candidates:
                out.append(replace(ref, implicit=True))
    return out


def _type_name(node: exp.DataType) -> list[str] | None:
    if node.this != exp.DataType.Type.USERDEFINED:
        return None
    kind = node.args.get("kind")
    parts: list[str] = []
    while isinstance(kind, exp.Dot):
        parts.insert(0, fold(kind.expression))
        kind = kind.this
    if isinstance(kind, (exp.Identifier, exp.Var)):
        parts.insert(0, fold(kind) if isinstance(kind, exp.Identifier) else str(kind.this).lower())
    elif isinstance(kind, str):
        parts.insert(0, kind.lower())
    else:
        return None
    return parts


def _reg_kind(node: exp.Expr) -> TypeRefKind | None:
    if isinstance(node, exp.Cast):
        to = node.args.get("to")
        if isinstance(to, exp.ObjectIdentifier):
            name = str(to.this).lower()
        elif isinstance(to, exp.DataType):
            parts = _type_name(to)
            if parts is None or (len(parts) == 2 and parts[0] != "pg_catalog") or len(parts) > 2:
                return None
            name = parts[-1]
        else:
            return None
    elif isinstance(node, exp.Anonymous) and isinstance(node.this, (str, exp.Identifier)):
        name = fold(node.this) if isinstance(node.this, exp.Identifier) else str(node.this).lower()
    else:
        return None
    if name == "regclass":
        return "regclass"
    return "regtype" if name == "regtype" else None


def _relation_type(
    kind: TypeRefKind, node: exp.Expr, parts: list[str], search_path: tuple[str, ...],
    snapshot: SchemaSnapshot | None, *, require: bool = False,
) -> TypeRef | None:
    if len(parts) > 2:
        return TypeRef(kind, node, ".".join(parts), ())
    schema = parts[0] if len(parts) == 2 else None
    candidates = candidate_schemas(parts[-1], schema, search_path, snapshot)
    if snapshot is not None:
        known = tuple(s for s in candidates if snapshot.relation(s, parts[-1]) is not None or s == "pg_catalog")
        if not known:
            # No relation by that name: an enum, a composite or an extension's type.
            return TypeRef(kind, node, parts[-1], ()) if require else None
        candidates = known
    return TypeRef(kind, node, parts[-1], candidates)


def _name_in_string(text: str, reg: str) -> list[str] | None:
    """The (schema, name) a regclass/regtype literal names (stringToQualifiedNameList, parseTypeString);
    None for a built-in type, [] when it cannot be read."""
    if reg == "regtype":
        try:
            built = exp.DataType.build(text, dialect="postgres")
        except (SqlglotError, ValueError):
            built = None
        while built is not None and built.this == exp.DataType.Type.ARRAY and built.expressions:
            element = built.expressions[0]
            built = element if isinstance(element, exp.DataType) else None
        if built is not None:
            return _type_name(built) if built.this == exp.DataType.Type.USERDEFINED else None
        text = text.strip().removesuffix("[]").strip()  # a name sqlglot does not know as a type
    try:
        table = exp.to_table(text, dialect="postgres")
    except (SqlglotError, ValueError):
        return []
    if not isinstance(table.this, exp.Identifier) or table.args.get("catalog"):
        return []
    db = table.args.get("db")
    return ([fold(db)] if db is not None else []) + [fold(table.this)]
