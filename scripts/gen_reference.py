#!/usr/bin/env python3
"""Write the two generated pages of the docs site from their single sources, so they cannot drift.

- docs/config-reference.md from schemas/config.schema.json (every key, its type, its limits and
  its description, in the order of the schema);
- docs/rules.md from the rule table `pgmcp.policy.rules.RULES` (code, name, summary), with the
  refused and allowed examples of each rule's case file in tests/rules/ (the cases the test suite
  checks against the real checker).

    python scripts/gen_reference.py          # rewrite the pages
    python scripts/gen_reference.py --check  # exit 1 if a committed page differs from its source

tests/test_docs_reference.py runs the check; the mkdocs hook (scripts/mkdocs_hooks.py) refuses
to build a site from stale pages.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CONFIG_SCHEMA = REPO / "schemas" / "config.schema.json"
RULE_CASES = REPO / "tests" / "rules"
COMMAND = "python scripts/gen_reference.py"

# The families of rule codes, by their first digit (prose for the headings; the codes, names and
# summaries come from RULES). A family not listed here is still rendered, under its code range.
FAMILIES = {
    "0": "Reading the statement",
    "1": "The statement kind",
    "2": "Relations (tables, views, table functions)",
    "3": "Columns",
    "4": "Functions",
    "5": "Rewrites (row filters, the row cap)",
}


def _banner(source: str) -> str:
    return (
        f"<!-- Generated from {source} by {COMMAND}: edit the source, then run it. "
        "tests/test_docs_reference.py fails while this page differs from its source. -->\n"
    )


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """`text` as inline code, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -- configuration reference ------------------------------------------------------------------


class SchemaDoc:
    """Renders one JSON Schema (draft 2020-12, the subset pgmcp's schemas use) as Markdown."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(self, node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The node with its `$ref` merged in (the node's own keys win), and the $defs name."""
        ref = node.get("$ref")
        if not ref:
            return node, None
        name = ref.rsplit("/", 1)[-1]
        merged = {**self.defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return merged, name

    def type_of(self, node: dict[str, Any]) -> str:
        node, ref = self.resolve(node)
        if ref and ref in self.defs and self.defs[ref].get("type") != "object":
            return f"[{ref}](#{ref})"
        if "enum" in node:
            return " \\| ".join(_code(json.dumps(v) if not isinstance(v, str) else v) for v in node["enum"])
        kind = node.get("type", "any")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        if kind == "array":
            items, _ = self.resolve(node.get("items", {}))
            inner = "objects" if items.get("type") == "object" else f"{self.type_of(node.get('items', {}))}s"
            return f"list of {inner}"
        if kind == "object" and "additionalProperties" in node and "properties" not in node:
            return "mapping"
        return str(kind)

    @staticmethod
    def limits_of(node: dict[str, Any]) -> str:
        parts = []
        for key, shown in (("minimum", "≥ {}"), ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"),
                           ("minItems", "at least {} item(s)"), ("minProperties", "at least {} entry(ies)")):
            if key in node and not (key == "exclusiveMinimum" and "pattern" in node):
                parts.append(shown.format(node[key]))
        if "items" in node and node["items"].get("minLength"):
            parts.append("items not empty")
        if "default" in node:
            parts.append(f"default {_code(json.dumps(node['default']))}")
        return ", ".join(parts)

    def sections(self, path: str, node: dict[str, Any], required: bool) -> Iterator[str]:
        """One section per object in the schema: a table of its keys, then its child objects."""
        node, _ = self.resolve(node)
        yield f"## `{path}`\n"
        lead = []
        if node.get("description"):
            lead.append(node["description"])
        if required:
            lead.append("Required.")
        if lead:
            yield " ".join(lead) + "\n"
        props: dict[str, Any] = node.get("properties", {})
        children: list[tuple[str, dict[str, Any], bool]] = []
        if props:
            needed = set(node.get("required", ()))
            yield "| key | type | limits | description |\n|---|---|---|---|"
            for key, sub in props.items():
                resolved, _ = self.resolve(sub)
                name = f"`{key}`" + (" (required)" if key in needed else "")
                yield (f"| {name} | {self.type_of(sub)} | {_cell(self.limits_of(resolved))} "
                       f"| {_cell(resolved.get('description', ''))} |")
                if resolved.get("type") == "object":
                    children.append((f"{path}.{key}", sub, key in needed))
                items, _ = self.resolve(resolved.get("items", {}))
                if resolved.get("type") == "array" and items.get("type") == "object":
                    children.append((f"{path}.{key}[]", items, False))
            yield ""
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            names = node.get("propertyNames", {})
            if names:
                yield f"Each key is {names.get('title', 'a name')} (`{names.get('pattern', '')}`).\n"
            children.append((f"{path}.<name>", extra, False))
        for child in children:
            yield from self.sections(*child)

    def types_section(self) -> Iterator[str]:
        scalars = {name: d for name, d in self.defs.items() if d.get("type") != "object"}
        if not scalars:
            return
        yield "## Value types\n"
        for name, node in scalars.items():
            yield f"### {name}\n"
            yield node.get("description", node.get("title", "")) + "\n"
            if "pattern" in node:
                yield f"Pattern: `{node['pattern']}`" + (
                    "; a number must be greater than 0." if "exclusiveMinimum" in node else ".") + "\n"


def render_config_reference(schema: dict[str, Any] | None = None) -> str:
    schema = schema if schema is not None else json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
    doc = SchemaDoc(schema)
    out = [
        _banner("schemas/config.schema.json"),
        "# Configuration reference\n",
        f"{schema.get('description', '')}\n",
        "Every key of the config file, in the order of the JSON",
        "Schema pgmcp validates it against (`schemas/config.schema.json`; editors with the YAML",
        "language server use it for completion). How the file is found, `${VAR}` expansion, durations",
        "and error messages: [Configuration](configuration.md).\n",
        "A key not listed here is an error (with a did-you-mean), and so is a value outside its",
        "type or limits.\n",
        "## Top level\n",
        "| key | type | description |\n|---|---|---|",
    ]
    needed = set(schema.get("required", ()))
    for key, sub in schema["properties"].items():
        resolved, _ = doc.resolve(sub)
        name = f"[`{key}`](#{key})" + (" (required)" if key in needed else "")
        out.append(f"| {name} | {doc.type_of(sub)} | {_cell(resolved.get('description', ''))} |")
    out.append("")
    for key, sub in schema["properties"].items():
        out.extend(doc.sections(key, sub, key in needed))
    out.extend(doc.types_section())
    return "\n".join(out).rstrip() + "\n"


# -- rule reference ---------------------------------------------------------------------------


def _case_shown(case: dict[str, Any]) -> str:
    """A case's SQL as Markdown; a generated one (`sql_repeat`) as its parts and repeat counts."""
    if "sql_repeat" in case:
        head, unit, n, middle, tail, m = case["sql_repeat"]
        parts = [(head, 1), (unit, n), (middle, 1), (tail, m)]
        shown = (_code(text) + (f" × {count:,}" if count > 1 else "") for text, count in parts if text and count)
        return " + ".join(shown)
    sql = str(case["sql"])
    return _code(sql) if sql.strip() else "(an empty text)"


def _cases(code: str) -> tuple[str | None, list[dict[str, Any]]]:
    path = RULE_CASES / f"{code}.yaml"
    if not path.exists():
        return None, []
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc.get("policy"), list(doc.get("cases", []))


def render_rules(rules: dict[str, Any] | None = None) -> str:
    if rules is None:
        sys.path.insert(0, str(REPO))
        from pgmcp.policy.rules import RULES

        rules = dict(RULES)
    out = [
        _banner("pgmcp/policy/rules/__init__.py (RULES) and tests/rules/*.yaml"),
        "# Rule reference\n",
        "Every refusal names one of these rules: its code, its name, a message saying what to change,",
        "the position in the SQL and the policy file and line that decided it. Rules are checked in",
        "stages: the statement, then its relations and functions, and its columns only once those",
        "pass, so a statement reading a denied table is reported for that alone. The examples are the",
        "cases of the rule's file in `tests/rules/`, which the test suite judges with the real checker",
        "against the shipped policy `shop-analyst` unless the file names another.",
        "Cases marked *with the live schema* are judged with a small schema snapshot, as the server",
        "and `check-config --connect` judge; the others as `check-sql --offline` does.",
        "How policies are written: [Policies](policies.md).\n",
        "| code | name | what it means |\n|---|---|---|",
    ]
    for code, rule in rules.items():
        out.append(f"| [`{code}`](#{code.lower()}) | `{rule.name}` | {_cell(rule.summary)} |")
    out.append("")
    family = None
    for code, rule in rules.items():
        digit = code[3] if len(code) > 3 else "?"
        if digit != family:
            family = digit
            out.append(f"## {FAMILIES.get(digit, f'PGM{digit}xx')}\n")
        out.append(f"### {code}\n")
        out.append(f"`{rule.name}`: {rule.summary}.\n")
        policy, cases = _cases(code)
        if policy:
            out.append(f"Policy of these cases: `{policy}`.\n")
        for expect, title in (("deny", "Refused"), ("allow", "Allowed")):
            chosen = [c for c in cases if c.get("expect") == expect]
            if not chosen:
                continue
            out.append(f"{title}:\n")
            for case in chosen:
                notes = []
                if case.get("snapshot"):
                    notes.append("with the live schema")
                if expect == "deny" and case.get("rules") and case["rules"] != [code]:
                    notes.append("reported as " + ", ".join(case["rules"]))
                if case.get("rewritten_contains"):
                    notes.append(f"rewritten to contain {_code(case['rewritten_contains'])}")
                elif "rewritten" in case and case["rewritten"] is None:
                    notes.append("not rewritten")
                out.append(f"- {_case_shown(case)}" + (f" ({'; '.join(notes)})" if notes else ""))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# -- entry point ------------------------------------------------------------------------------

PAGES = {"config-reference.md": render_config_reference, "rules.md": render_rules}


def stale_pages() -> list[str]:
    """The generated pages whose committed text differs from what their sources give now."""
    stale = []
    for name, render in PAGES.items():
        path = DOCS / name
        if not path.exists() or path.read_text(encoding="utf-8") != render():
            stale.append(f"docs/{name}")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report pages that differ from their source")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"{page} is out of date: run {COMMAND}", file=sys.stderr)
        return 1 if stale else 0
    for name, render in PAGES.items():
        (DOCS / name).write_text(render(), encoding="utf-8")
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
