"""Policy YAML documents -> `PolicySpec`, with `extends` resolved and every rule located.

One file is parsed (keeping lines), validated against `schemas/policy.schema.json`, and its
patterns and row filters checked (`pgmcp.policy.conditions`). Documents are then merged,
parents first (see `pgmcp.policy.merge` for the rules). `extends` entries and the refs given
to `load_policy_spec` are shipped policy names (`baseline`) or paths relative to the naming
file's folder. Cycles are errors that name the chain.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgmcp.documents.docschema import load_schema, validate
from pgmcp.documents.durations import parse_duration
from pgmcp.documents.resources import is_policy_path, resolve_policy_ref, shipped_policy_names
from pgmcp.documents.yamldoc import YamlDocument, read_yaml
from pgmcp.errors import PolicyError, SourceLocation
from pgmcp.policy.conditions import check_condition, check_pattern
from pgmcp.policy.merge import PolicyDocument, merge_documents
from pgmcp.policy.spec import ColumnRule, FunctionRule, PolicySpec, PolicyTest, RowFilter, TableRule


def load_policy_file(path: Path) -> PolicySpec:
    """The effective policy of the document at `path` (with everything it extends)."""
    return load_policy_spec([str(path.resolve())], path.resolve().parent)


def load_policy_spec(refs: Sequence[str], base_dir: Path) -> PolicySpec:
    """Merge the documents `refs` names, in order, as if one document extended them all.

    Empty `refs` means the shipped `baseline`. Tests (`tests:`) come from the named documents
    themselves, not from what they extend: a parent's examples need not hold for a child.
    """
    refs = list(refs) or ["baseline"]
    loader = _Loader()
    top: list[PolicyDocument] = []
    for ref in refs:
        where = SourceLocation(str(base_dir))
        path = _resolve(ref, base_dir, where)
        top.append(loader.visit(path, [], where))
    return merge_documents(loader.order, top)


def _resolve(ref: str, base_dir: Path, where: SourceLocation) -> Path:
    found = resolve_policy_ref(ref, base_dir)
    if found is not None:
        return found
    if is_policy_path(ref):
        raise PolicyError(
            f"policy file {ref!r} does not exist",
            where,
            hint=f"paths are relative to the folder of the file that names them ({base_dir})",
        )
    names = shipped_policy_names()
    close = difflib.get_close_matches(ref, names, n=1)
    hint = (f"did you mean {close[0]!r}? " if close else "") + f"shipped policies: {', '.join(names)}"
    raise PolicyError(f"no shipped policy named {ref!r}", where, hint=hint)


class _Loader:
    """Reads each file once and lists documents parents-first (a linearization of extends)."""

    def __init__(self) -> None:
        self.documents: dict[Path, PolicyDocument] = {}
        self.order: list[PolicyDocument] = []

    def visit(self, path: Path, chain: list[Path], where: SourceLocation) -> PolicyDocument:
        if path in chain:
            names = " -> ".join(p.name for p in [*chain[chain.index(path) :], path])
            raise PolicyError(
                f"extends cycle: {names}",
                where,
                hint="remove one of these extends entries; a policy cannot extend itself",
            )
        if path in self.documents:
            return self.documents[path]
        document = read_policy_document(path)
        for ref, ref_where in document.extends:
            parent = _resolve(ref, path.parent, ref_where)
            self.visit(parent, [*chain, path], ref_where)
        self.documents[path] = document
        self.order.append(document)
        return document


def read_policy_document(path: Path) -> PolicyDocument:
    """One policy file's own content, validated and located (no extends resolution)."""
    doc = read_yaml(path, PolicyError)
    validate(doc, load_schema("policy"), PolicyError)
    data: dict[str, Any] = doc.data
    loc = doc.location

    statements = None
    if "statements" in data:
        statements = (frozenset(data["statements"]), loc(("statements",)))
    tables = tuple(_table_rule(doc, pattern, action) for pattern, action in data.get("tables", {}).items())
    columns = tuple(
        _listed(doc, ("columns", action), "column", (3,), ColumnRule) for action in ("allow", "deny")
    )
    functions = tuple(
        _listed(doc, ("functions", action), "function", (1, 2), FunctionRule) for action in ("allow", "deny")
    )
    row_filters = []
    for table, condition in data.get("row_filters", {}).items():
        where = loc(("row_filters", table))
        check_pattern(table, "row filter table", (2,), where)
        check_condition(condition, where)
        row_filters.append(RowFilter(table, condition, where))
    limits = data.get("limits", {})
    max_rows = (limits["max_rows"], loc(("limits", "max_rows"))) if "max_rows" in limits else None
    timeout_ms = None
    if "statement_timeout" in limits:
        where = loc(("limits", "statement_timeout"))
        timeout_ms = round(parse_duration(limits["statement_timeout"], where, error=PolicyError) * 1000)
    search_path = tuple(data["search_path"]) if "search_path" in data else None
    return PolicyDocument(
        file=str(path),
        name=data.get("name", path.stem),
        description=data.get("description"),
        extends=tuple((ref, loc(("extends", i))) for i, ref in enumerate(data.get("extends", []))),
        statements=statements,
        explain_analyze=data.get("explain_analyze"),
        tables=tables,
        column_allow=columns[0],
        column_deny=columns[1],
        function_allow=functions[0],
        function_deny=functions[1],
        row_filters=tuple(row_filters),
        max_rows=max_rows,
        statement_timeout_ms=timeout_ms,
        max_sql_bytes=limits.get("max_sql_bytes"),
        search_path=search_path,
        tests=tuple(_test(doc, i, raw) for i, raw in enumerate(data.get("tests", []))),
    )


def _table_rule(doc: YamlDocument, pattern: str, action: Any) -> TableRule:
    where = doc.location(("tables", pattern))
    check_pattern(pattern, "table", (2,), where)
    return TableRule(pattern, action, where)


def _listed(doc: YamlDocument, path: tuple[str, str], kind: str, parts: tuple[int, ...], rule: Any) -> Any:
    section, action = path
    rules = []
    for index, pattern in enumerate(doc.data.get(section, {}).get(action, [])):
        where = doc.location((section, action, index))
        check_pattern(pattern, kind, parts, where)
        rules.append(rule(pattern, action, where))
    return tuple(rules)


def _test(doc: YamlDocument, index: int, raw: dict[str, Any]) -> PolicyTest:
    rows = raw.get("rows")
    return PolicyTest(
        sql=raw["sql"],
        expect=raw["expect"],
        rules=tuple(raw.get("rules", [])),
        rows=tuple(tuple(r) for r in rows) if rows is not None else None,
        source=doc.location(("tests", index)),
        claims=raw.get("claims"),
    )
