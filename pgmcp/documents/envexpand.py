"""`${VAR}` and `${VAR:-default}` in config values, expanded from the environment.

Rules (documented in docs/configuration.md, "Environment variables"):
- only string values are expanded, never keys; `$$` stands for one literal `$`; a `$` not
  followed by `{` or `$` is kept as is;
- `${VAR:-default}` uses `default` when VAR is unset *or empty* (as the shell does);
  `${VAR}` with VAR unset is an error naming the variable and where it is used;
- expansion happens before schema validation, and a value that contained an expansion takes
  the type the schema wants at that key: `port: ${PORT:-5432}` becomes the integer 5432,
  `password: ${PW}` stays text even when PW is all digits. If the text does not fit (a port
  of "54x"), validation reports the type error at that line.
- a command that needs no secrets (`check-sql --offline`, `check-config` without `--connect`)
  passes `unset_secrets`: an unset `${VAR}` at a secret key (`SECRET_VALUE_KEYS`) then expands
  to "" and is recorded there instead of stopping the load.
Policy documents are not expanded: row filters are SQL, where `$` has its own meanings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pgmcp.documents.docschema import types_at
from pgmcp.documents.yamldoc import PathKey, YamlDocument
from pgmcp.errors import ConfigError

_TOKEN = re.compile(r"\$(\$|\{([^}]*)\}|\{)")
_BODY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)
_INT = re.compile(r"^[-+]?\d+$")
# Keys whose values are secrets only a live connection or a model call uses.
SECRET_VALUE_KEYS = frozenset({"password", "api_key"})
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class UnsetSecret:
    """A secret's `${VAR}` left unset where the command needs no secrets."""

    variable: str
    key_path: str


def expand_string(
    text: str, environ: Mapping[str, str], doc: YamlDocument, path: PathKey,
    unset_secrets: list[UnsetSecret] | None = None,
) -> str:
    """Expand the references in one string value found at `path` of `doc`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        body = match.group(2)
        if body is None:
            raise ConfigError(
                "unterminated ${ in value",
                doc.location(path),
                hint="write ${NAME} or ${NAME:-default}; write $$ for a literal dollar sign",
            )
        parsed = _BODY.match(body)
        if not parsed:
            raise ConfigError(
                f"bad variable reference ${{{body}}}",
                doc.location(path),
                hint="write ${NAME} or ${NAME:-default} (NAME: letters, digits, _); $$ is a literal $",
            )
        name, default = parsed.group(1), parsed.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None and unset_secrets is not None and path and path[-1] in SECRET_VALUE_KEYS:
            unset_secrets.append(UnsetSecret(name, doc.location(path).key_path))
            return ""
        if value is None:
            raise ConfigError(
                f"environment variable {name} is not set (used at {doc.location(path).key_path})",
                doc.location(path),
                hint=f"set {name} in the environment, or give a default: ${{{name}:-value}}",
            )
        return value

    return _TOKEN.sub(substitute, text)


def _coerce(text: str, types: set[str]) -> Any:
    if not types or "string" in types:
        return text
    if "integer" in types and _INT.match(text.strip()):
        return int(text)
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in types and text.strip().lower() in _BOOLS:
        return _BOOLS[text.strip().lower()]
    if "null" in types and not text.strip():
        return None
    return text  # validation reports the mismatch at this key


def expand_document(
    doc: YamlDocument, schema: dict[str, Any], environ: Mapping[str, str],
    unset_secrets: list[UnsetSecret] | None = None,
) -> YamlDocument:
    """Return `doc` with every string value expanded (see the module docstring)."""

    def walk(value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            expanded = expand_string(value, environ, doc, path, unset_secrets)
            return _coerce(expanded, types_at(schema, path)) if expanded != value else value
        return value

    return doc.replace_data(walk(doc.data, ()))
