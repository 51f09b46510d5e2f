"""Validate a `YamlDocument` against one of the shipped JSON Schemas (Draft 2020-12).

The schemas in `schemas/` are the single source of what a document may say; this module
turns jsonschema's findings into `DocumentError`s a person can act on: the file, line and key
path, a plain message, and a hint (the closest valid key for a typo, the expected type, the
allowed values).
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from pgmcp.documents.resources import schema_path
from pgmcp.documents.yamldoc import PathKey, YamlDocument
from pgmcp.errors import DocumentError

# Values at these keys are never echoed back in a message.
SECRET_KEYS = frozenset({"password", "api_key", "dsn"})

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true/false)",
    "object": "a mapping of keys",
    "array": "a list",
    "null": "nothing",
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed shipped schema `name` (`config` or `policy`).

    That each shipped schema is itself a valid Draft 2020-12 schema is a test
    (tests/test_config_keys.py), not a check at every start: checking it against the
    metaschema cost more CPU than anything else `pgmcp check-sql` does before it judges SQL.
    """
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


def _kind_of(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _shown(path: PathKey, value: object) -> str:
    if path and path[-1] in SECRET_KEYS:
        return "(value hidden)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _closest(word: str, options: list[str]) -> str | None:
    folded = {o.lower(): o for o in options}
    match = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


def _describe(error: ValidationError) -> tuple[PathKey, str, str | None]:
    """(path, message, hint) for one jsonschema error."""
    path: PathKey = tuple(error.absolute_path)
    keyword: Any = error.validator
    value: Any = error.instance
    spec: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    title = schema.get("title")
    if keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        extras = [k for k in value if k not in allowed and not any(re.search(p, k) for p in patterns)]
        key = str(extras[0]) if extras else "?"
        close = _closest(key, allowed)
        valid = ", ".join(allowed)
        guess = f"did you mean {close!r}? " if close else ""
        return (*path, key), f"unknown key {key!r}", f"{guess}valid keys here: {valid}"
    if keyword == "required":
        missing = [k for k in spec if k not in value]
        key = missing[0] if missing else "?"
        sub = schema.get("properties", {}).get(key, {})
        about = sub.get("description", "") if isinstance(sub, dict) else ""
        return path, f"missing required key {key!r}", f"add `{key}:` here" + (f" ({about})" if about else "")
    if keyword == "type":
        expected = spec if isinstance(spec, list) else [spec]
        wanted = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
        message = f"expected {wanted}, got {_kind_of(value)}"
        if not isinstance(value, (dict, list)) and value is not None:
            message += f" {_shown(path, value)}"
        hint: str | None = None
        if "string" in expected and isinstance(value, (int, float, bool)):
            example = "" if path and path[-1] in SECRET_KEYS else f', e.g. "{value}"'
            hint = f"quote the value to make it text{example}"
        elif "array" in expected and not isinstance(value, list):
            hint = "write a list, e.g. [a, b], or one '- item' per line"
        elif "object" in expected and value is None:
            hint = "give it at least one key, or remove it"
        elif ("integer" in expected or "number" in expected) and isinstance(value, str):
            hint = "write a plain number, without quotes or units"
        return path, message, hint or schema.get("description")
    if keyword == "enum":
        options = [str(o) for o in spec]
        close = _closest(str(value), options)
        guess = f"did you mean {close!r}? " if close else ""
        return path, f"{_shown(path, value)} is not allowed here", f"{guess}allowed: {', '.join(options)}"
    if keyword == "pattern":
        if "propertyNames" in error.schema_path:
            what = title or f"a name matching {spec}"
            return (*path, str(value)), f"{str(value)!r} is not a valid key here", f"expected {what}"
        what = title or f"text matching {spec}"
        return path, f"{_shown(path, value)} is not valid here", f"expected {what}"
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[keyword]
        return path, f"{_shown(path, value)} is out of range: must be {bound} {spec}", title
    if keyword in ("minItems", "minProperties"):
        what = "item" if keyword == "minItems" else "key"
        return path, f"must have at least {spec} {what}(s)", schema.get("description")
    if keyword == "maxItems":
        return path, f"must have at most {spec} item(s)", None
    if keyword == "uniqueItems":
        return path, "list has duplicate items", "list each value once"
    if keyword in ("oneOf", "anyOf"):
        forms = [str(s["title"]) for s in spec if isinstance(s, dict) and s.get("title")]
        return (
            path,
            f"{_shown(path, value)} does not match any allowed form",
            ("expected " + " or ".join(forms) if forms else None),
        )
    return path, error.message, None


def validate(doc: YamlDocument, schema: dict[str, Any], error: type[DocumentError]) -> None:
    """Raise `error` for the most useful schema violation of `doc` (others are counted)."""
    if doc.data is None:
        raise error("the document is empty", doc.location(()), hint="see the examples in docs/quickstart.md")
    validator = Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc.data))
    if not errors:
        return
    best = best_match(errors)
    assert best is not None
    path, message, hint = _describe(best)
    others = []
    for other in errors:
        if other is best or other in best.context:
            continue
        other_path, _, _ = _describe(other)
        where = doc.location(other_path)
        others.append((where.line or 0, f"{where.key_path or '(top)'} (line {where.line})"))
    if others:
        listed = ", ".join(text for _, text in sorted(others)[:5])
        message += f" [{len(others)} more problem(s): {listed}]"
    raise error(message, doc.location(path), hint=hint)


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target: dict[str, Any] = root["$defs"][ref.removeprefix("#/$defs/")]
        return _resolve(root, target)
    return schema


def _alternatives(root: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(root, schema)
    found = [schema]
    for keyword in ("anyOf", "oneOf", "allOf"):
        for alt in schema.get(keyword, []):
            found.extend(_alternatives(root, alt))
    return found


def _children(root: dict[str, Any], schema: dict[str, Any], key: str | int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for alt in _alternatives(root, schema):
        if isinstance(key, int):
            if isinstance(alt.get("items"), dict):
                found.append(alt["items"])
            continue
        if key in alt.get("properties", {}):
            found.append(alt["properties"][key])
            continue
        matched = [s for p, s in alt.get("patternProperties", {}).items() if re.search(p, key)]
        found.extend(matched)
        if not matched and isinstance(alt.get("additionalProperties"), dict):
            found.append(alt["additionalProperties"])
    return found


def types_at(schema: dict[str, Any], path: PathKey) -> set[str]:
    """The JSON types the schema accepts at `path` (empty when it says nothing)."""
    current = [schema]
    for key in path:
        current = [child for s in current for child in _children(schema, s, key)]
    types: set[str] = set()
    for s in current:
        for alt in _alternatives(schema, s):
            declared = alt.get("type")
            if isinstance(declared, str):
                types.add(declared)
            elif isinstance(declared, list):
                types.update(declared)
    return types
