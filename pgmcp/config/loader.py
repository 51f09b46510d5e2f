"""Load `pgmcp.yaml` into the frozen `pgmcp.config.model.Config`.

Order of work: parse YAML (keeping lines) -> expand `${VAR}` -> validate against
`schemas/config.schema.json` -> build the values, checking what a schema cannot say (dsn vs
host, durations, policy files that must exist). Every error is a `ConfigError` naming the
file, line and key path, with a hint. Nothing here knows about the rest of pgmcp.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pgmcp.config.auth_loader import load_access, load_auth
from pgmcp.config.model import (
    Config,
    DatabaseConfig,
    LimitsConfig,
    LLMConfig,
    LoggingConfig,
    PoolConfig,
    SchemaCacheConfig,
    Secret,
)
from pgmcp.documents.docschema import load_schema, validate
from pgmcp.documents.durations import parse_duration
from pgmcp.documents.envexpand import UnsetSecret, expand_document
from pgmcp.documents.resources import is_policy_path, resolve_policy_ref, shipped_policy_names, shipped_policy_path
from pgmcp.documents.yamldoc import PathKey, YamlDocument, read_yaml
from pgmcp.errors import ConfigError, SourceLocation

DEFAULT_CONFIG_NAME = "pgmcp.yaml"
_DISCRETE = ("host", "port", "user", "dbname")


def find_config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: `--config`, else `$PGMCP_CONFIG`, else `./pgmcp.yaml`."""
    env = os.environ if environ is None else environ
    if explicit:
        candidate, origin = Path(explicit), "--config"
    elif env.get("PGMCP_CONFIG"):
        candidate, origin = Path(env["PGMCP_CONFIG"]), "PGMCP_CONFIG"
    else:
        candidate, origin = Path(DEFAULT_CONFIG_NAME), "the default"
    if not candidate.is_file():
        raise ConfigError(
            f"config file {candidate} (from {origin}) does not exist",
            SourceLocation(str(candidate)),
            hint="pass --config FILE, set PGMCP_CONFIG, or create ./pgmcp.yaml "
            "(start from config.example.yaml)",
        )
    return candidate


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, need_secrets: bool = True
) -> Config:
    """Read, expand, validate and build the config at `path` (see the module docstring).

    With `need_secrets=False` (commands that neither connect nor call a model) an unset
    variable for a password or API key is no error: the secret stays empty and the variable
    is listed in `Config.unset_secrets`.
    """
    env = os.environ if environ is None else environ
    schema = load_schema("config")
    unset: list[UnsetSecret] | None = None if need_secrets else []
    doc = expand_document(read_yaml(path, ConfigError), schema, env, unset)
    validate(doc, schema, ConfigError)
    data: dict[str, Any] = doc.data
    base_dir = path.resolve().parent
    databases = tuple(_database(doc, name, raw, base_dir) for name, raw in data["databases"].items())
    return Config(
        path=path.resolve(),
        databases=databases,
        llm=_llm(doc, data.get("llm", {})),
        schema_cache=_schema_cache(doc, data.get("schema_cache", {})),
        limits=_limits(doc, data.get("limits", {})),
        logging=_logging(data.get("logging", {}), base_dir),
        auth=load_auth(doc, data.get("auth"), base_dir),
        unset_secrets=tuple(f"{u.variable} (at {u.key_path})" for u in unset or ()),
    )


def _duration(doc: YamlDocument, path: PathKey, value: object) -> float:
    return parse_duration(value, doc.location(path), error=ConfigError)


def _split_dsn(dsn: str, where: SourceLocation) -> tuple[str, str | None]:
    """Return the DSN without its password, and the password (from userinfo or `?password=`)."""
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        raise ConfigError("dsn is not a valid URI", where, hint="postgresql://user@host:5432/dbname") from exc
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            "dsn must be a postgresql:// URI",
            where,
            hint="write postgresql://user@host:5432/dbname, or use host/port/user/dbname keys",
        )
    password: str | None = None
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, raw_password = userinfo.partition(":")
        if colon:
            password = unquote(raw_password)
        netloc = f"{user}@{hostport}" if user else hostport
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "password"]
    for k, v in query:
        if k == "password":
            password = v
    clean = urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))
    return clean, password


def _policy_refs(doc: YamlDocument, path: PathKey, refs: list[str], base_dir: Path) -> tuple[str, ...]:
    resolved = []
    for index, ref in enumerate(refs):
        found = resolve_policy_ref(ref, base_dir)
        if found is None:
            where = doc.location((*path, index))
            if is_policy_path(ref):
                hint = f"paths are relative to the config file's folder, {base_dir}"
                raise ConfigError(f"policy file {ref!r} does not exist", where, hint=hint)
            names = shipped_policy_names()
            close = difflib.get_close_matches(ref, names, n=1)
            hint = (f"did you mean {close[0]!r}? " if close else "") + f"shipped policies: {', '.join(names)}"
            raise ConfigError(f"no shipped policy named {ref!r}", where, hint=hint)
        resolved.append(str(found))
    if not resolved:
        baseline = shipped_policy_path("baseline")
        resolved = [str(baseline)] if baseline else ["baseline"]
    return tuple(resolved)


def _database(doc: YamlDocument, name: str, raw: dict[str, Any], base_dir: Path) -> DatabaseConfig:
    path: PathKey = ("databases", name)
    discrete = [k for k in _DISCRETE if k in raw]
    if "dsn" in raw and discrete:
        raise ConfigError(
            f"database {name!r} has both dsn and {discrete[0]}",
            doc.location((*path, discrete[0])),
            hint="give either dsn, or host/port/user/dbname, not both",
        )
    if "dsn" not in raw and "host" not in raw:
        raise ConfigError(
            f"database {name!r} says neither dsn nor host",
            doc.location(path),
            hint="add `dsn: postgresql://user@host:5432/dbname`, or host/port/user/dbname keys",
        )
    dsn: str | None = None
    password = raw.get("password", "")
    if "dsn" in raw:
        dsn, dsn_password = _split_dsn(raw["dsn"], doc.location((*path, "dsn")))
        if dsn_password and password:
            raise ConfigError(
                f"database {name!r} has a password both in dsn and in password",
                doc.location((*path, "password")),
                hint="keep one: preferably `password: ${VAR}` and no password in the dsn",
            )
        password = password or dsn_password or ""
    pool = PoolConfig(**raw.get("pool", {}))
    if pool.min_size > pool.max_size:
        raise ConfigError(
            f"pool.min_size ({pool.min_size}) is larger than pool.max_size ({pool.max_size})",
            doc.location((*path, "pool", "min_size")),
            hint="lower min_size or raise max_size",
        )
    timeout = raw.get("statement_timeout")
    search_path = raw.get("search_path")
    return DatabaseConfig(
        name=name,
        dsn=dsn,
        host=raw.get("host"),
        port=raw.get("port"),
        user=raw.get("user"),
        dbname=raw.get("dbname"),
        password=Secret(password),
        sslmode=raw.get("sslmode"),
        description=raw.get("description", ""),
        policies=_policy_refs(doc, (*path, "policies"), raw.get("policies") or [], base_dir),
        role=raw.get("role") or None,
        pool=pool,
        pgbouncer=raw.get("pgbouncer", False),
        refuse_unsafe_role=raw.get("refuse_unsafe_role", False),
        require_grants=raw.get("require_grants", False),
        search_path=tuple(search_path) if search_path else None,
        statement_timeout=_duration(doc, (*path, "statement_timeout"), timeout)
        if timeout is not None
        else None,
        access=load_access(doc, (*path, "access"), raw.get("access"),
                           lambda where, refs: _policy_refs(doc, where, refs, base_dir)),
        source=doc.location(path),
    )


_LLM_DURATIONS = ("timeout", "breaker_recovery")


def _llm(doc: YamlDocument, raw: dict[str, Any]) -> LLMConfig:
    values = dict(raw)
    for key in _LLM_DURATIONS:
        if key in values:
            values[key] = _duration(doc, ("llm", key), values[key])
    base_url = values.get("base_url") or None
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL",
            doc.location(("llm", "base_url")),
            hint="write e.g. https://api.example.com/v1, or leave it empty for the vendor's endpoint",
        )
    values["base_url"] = base_url
    values["model"] = values.get("model") or None
    values["api_key"] = Secret(values.get("api_key") or "")
    values["examples"] = tuple((e["question"], e["sql"]) for e in values.get("examples", []))
    return LLMConfig(**values)


def _schema_cache(doc: YamlDocument, raw: dict[str, Any]) -> SchemaCacheConfig:
    values = dict(raw)
    if "ttl" in values:
        values["ttl"] = _duration(doc, ("schema_cache", "ttl"), values["ttl"])
    return SchemaCacheConfig(**values)


_LIMIT_DURATIONS = ("statement_timeout", "lock_timeout", "idle_in_transaction_timeout")


def _limits(doc: YamlDocument, raw: dict[str, Any]) -> LimitsConfig:
    values = dict(raw)
    for key in _LIMIT_DURATIONS:
        if key in values:
            values[key] = _duration(doc, ("limits", key), values[key])
    return LimitsConfig(**values)


def _logging(raw: dict[str, Any], base_dir: Path) -> LoggingConfig:
    values = dict(raw)
    if values.get("audit_file"):
        values["audit_file"] = str((base_dir / values["audit_file"]).resolve())
    else:
        values.pop("audit_file", None)
    return LoggingConfig(**values)
