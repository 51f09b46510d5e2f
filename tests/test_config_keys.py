"""One source per config setting: the JSON Schema (`schemas/config.schema.json`), the defaults
(`pgmcp.config.model`) and the loader (`pgmcp.config.loader`) agree on every key.

- every key the schema allows is a field of the model, and every field is a key;
- a field's default is the schema's `default` (durations in their written form), and a field
  without a default (None, empty) has none in the schema (the docs are generated from it);
- a config setting every key to a value other than its default loads into exactly those values,
  so no key is accepted by the schema and then dropped or mangled by the loader.

The values are derived from the schema itself, so a key added to the schema is covered here
the moment it is added.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from pgmcp.config import model
from pgmcp.config.loader import load_config
from pgmcp.documents.docschema import load_schema
from pgmcp.documents.durations import parse_duration
from pgmcp.documents.resources import schema_path, shipped_policy_path
from pgmcp.errors import ConfigError

SCHEMA: dict[str, Any] = json.loads(schema_path("config").read_text())
DURATION = "#/$defs/duration"


@dataclasses.dataclass(frozen=True)
class Section:
    key: str  # where in the YAML ("llm", "databases.<name>", "databases.<name>.pool")
    node: dict[str, Any]  # its schema
    model: type
    internal: frozenset[str] = frozenset()  # fields the loader fills from elsewhere


def _database_node() -> dict[str, Any]:
    return dict(SCHEMA["$defs"]["database"])


SECTIONS = [
    Section("llm", SCHEMA["$defs"]["llm"], model.LLMConfig),
    Section("schema_cache", SCHEMA["properties"]["schema_cache"], model.SchemaCacheConfig),
    Section("limits", SCHEMA["properties"]["limits"], model.LimitsConfig),
    Section("logging", SCHEMA["properties"]["logging"], model.LoggingConfig),
    Section("databases.<name>", _database_node(), model.DatabaseConfig, frozenset({"name", "source"})),
    Section("databases.<name>.pool", _database_node()["properties"]["pool"], model.PoolConfig),
    Section("auth", SCHEMA["$defs"]["auth"], model.AuthConfig),
    Section("auth.jwt", SCHEMA["$defs"]["auth"]["properties"]["jwt"], model.JWTConfig),
]
TOP_LEVEL = {"databases", "llm", "schema_cache", "limits", "logging", "auth"}
# Sections the every-key load below leaves to their own tests (tests/test_auth_*.py): their
# values are tokens, key files and rate limits that need more than a derived value.
LOADED_ELSEWHERE = {"auth", "auth.jwt"}
IDS = [s.key for s in SECTIONS]


@pytest.mark.parametrize("name", ["config", "policy"])
def test_shipped_schemas_are_valid_json_schemas(name: str) -> None:
    # Checked here, not at every start of pgmcp (docschema.load_schema): the schema files
    # ship with the code, so a test run is the place to prove them.
    Draft202012Validator.check_schema(load_schema(name))


def test_top_level_keys_are_the_config_fields() -> None:
    assert set(SCHEMA["properties"]) == TOP_LEVEL
    # path and unset_secrets (what loading found) are no config keys
    assert {f.name for f in dataclasses.fields(model.Config)} == TOP_LEVEL | {"path", "unset_secrets"}


@pytest.mark.parametrize("section", SECTIONS, ids=IDS)
def test_schema_keys_are_model_fields(section: Section) -> None:
    fields = {f.name for f in dataclasses.fields(section.model)} - section.internal
    keys = set(section.node["properties"])
    assert keys - fields == set(), f"{section.key}: in the schema, not in {section.model.__name__}"
    assert fields - keys == set(), f"{section.key}: in {section.model.__name__}, not in the schema"


def _has_default(value: object) -> bool:
    return value not in (None, (), "", dataclasses.MISSING) and not isinstance(value, model.Secret) \
        and not dataclasses.is_dataclass(value)


@pytest.mark.parametrize("section", SECTIONS, ids=IDS)
def test_schema_defaults_are_model_defaults(section: Section) -> None:
    for field in dataclasses.fields(section.model):
        if field.name in section.internal:
            continue
        node = section.node["properties"][field.name]
        where = f"{section.key}.{field.name}"
        if not _has_default(field.default):
            assert "default" not in node, f"{where}: the model has no default, the schema says {node['default']!r}"
            continue
        assert "default" in node, f"{where}: add \"default\" to the schema (the model's is {field.default!r})"
        written = node["default"]
        schema_value = parse_duration(written, None, error=ConfigError) if node.get("$ref") == DURATION else written
        assert schema_value == field.default, f"{where}: schema default {written!r}, model default {field.default!r}"
        assert "(default" not in node.get("description", ""), f"{where}: the default belongs in \"default\" only"


# --- the loader reads every key ---------------------------------------------------------

# Keys whose values the generic rule below cannot pick: (YAML value, expected model value).
SPECIAL: dict[str, tuple[Any, Any]] = {
    "llm.base_url": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    "llm.examples": ([{"question": "How many?", "sql": "SELECT 1"}], (("How many?", "SELECT 1"),)),
    "databases.<name>.policies": (["permissive"], (str(shipped_policy_path("permissive")),)),
    "limits.work_mem": ("4MB", "4MB"),
    "limits.temp_file_limit": ("512MB", "512MB"),
    "databases.<name>.dsn": (None, None),  # set on the second database, see below
    "databases.<name>.access": (None, None),  # principals and their policies: tests/test_auth_*.py
}


def _other_value(key: str, node: dict[str, Any], default: object) -> tuple[Any, Any]:
    """A valid value for `node` other than `default`, and what the model should hold for it."""
    if key in SPECIAL:
        return SPECIAL[key]
    if node.get("$ref") == DURATION:
        return "7s", 7.0
    if "enum" in node:
        choice = next(v for v in node["enum"] if v != default)
        return choice, choice
    kind = node.get("type")
    if kind == "boolean":
        return (not default), (not default)
    if kind == "integer":
        low = node.get("minimum", 0)
        value = low + 3 if low + 3 != default else low + 4
        return value, value
    if kind == "number":
        value = node.get("maximum", 2.0) / 2 + 0.05
        return value, value
    if kind == "string":
        return f"value-of-{key.rsplit('.', 1)[-1]}", f"value-of-{key.rsplit('.', 1)[-1]}"
    if kind == "array":
        return ["s1", "s2"], ("s1", "s2")
    raise AssertionError(f"{key}: add a value for this kind of setting to SPECIAL")


def _settings(section: Section) -> tuple[dict[str, Any], dict[str, Any]]:
    """(YAML mapping, expected field values) setting every key of `section` to a non-default."""
    raw: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    defaults = {f.name: f.default for f in dataclasses.fields(section.model)}
    for key, node in section.node["properties"].items():
        if node.get("type") == "object" and "properties" in node:
            continue  # a nested section (pool), checked on its own
        value, want = _other_value(f"{section.key}.{key}", node, defaults.get(key))
        if value is not None:
            raw[key] = value
            expected[key] = want
    return raw, expected


def _plain(value: object) -> object:
    return value.value if isinstance(value, model.Secret) else value


def test_every_key_loads_into_its_field(tmp_path: Path) -> None:
    by_key = {s.key: _settings(s) for s in SECTIONS if s.key not in LOADED_ELSEWHERE}
    db_raw, db_expected = by_key["databases.<name>"]
    pool_raw, pool_expected = by_key["databases.<name>.pool"]
    log_raw, log_expected = by_key["logging"]
    log_expected["audit_file"] = str((tmp_path / log_raw["audit_file"]).resolve())
    document = {
        "databases": {
            "discrete": {**db_raw, "pool": pool_raw},
            # dsn excludes host/port/user/dbname, so it gets a database of its own
            "by_dsn": {"dsn": "postgresql://someone@db.example:6543/shop"},
        },
        "llm": by_key["llm"][0],
        "schema_cache": by_key["schema_cache"][0],
        "limits": by_key["limits"][0],
        "logging": log_raw,
    }
    path = tmp_path / "pgmcp.yaml"
    path.write_text(yaml.safe_dump(document))
    config = load_config(path, environ={})

    loaded = {
        "llm": config.llm, "schema_cache": config.schema_cache, "limits": config.limits,
        "logging": config.logging, "databases.<name>": config.database("discrete"),
        "databases.<name>.pool": config.database("discrete").pool,  # type: ignore[union-attr]
    }
    expected = {**{k: v[1] for k, v in by_key.items()}, "logging": log_expected,
                "databases.<name>": db_expected, "databases.<name>.pool": pool_expected}
    for key, values in expected.items():
        for field, want in values.items():
            got = _plain(getattr(loaded[key], field))
            assert got == want, f"{key}.{field}: set to {want!r} in the file, loaded as {got!r}"
    by_dsn = config.database("by_dsn")
    assert by_dsn is not None and by_dsn.dsn == "postgresql://someone@db.example:6543/shop"
