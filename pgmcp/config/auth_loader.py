"""Load the `auth` section and the `access` lists of databases (see docs/deployment.md).

The JSON Schema has already checked the shapes; this checks what it cannot say: a token hash
is 64 hex digits and no two tokens share one, rate limits read as `120/min`, exactly one JWT
key source is given and its file exists, and every `access` entry names someone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgmcp.config.model import AccessEntry, AuthConfig, JWTConfig, RateLimit, StaticToken
from pgmcp.documents.durations import parse_duration
from pgmcp.documents.yamldoc import PathKey, YamlDocument
from pgmcp.errors import ConfigError

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
        "h": 3600.0, "hour": 3600.0}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_SOURCES = ("jwks_url", "jwks_file", "public_key_file")


def parse_rate_limit(doc: YamlDocument, path: PathKey, text: object) -> RateLimit:
    found = _RATE.match(str(text))
    if found is None or int(found[1]) < 1:
        raise ConfigError(f"{text!r} is not a rate limit", doc.location(path),
                          hint='write calls per unit, e.g. "120/min", "5/s" or "1000/h"')
    return RateLimit(int(found[1]), _PER[found[2]])


def load_auth(doc: YamlDocument, raw: dict[str, Any] | None, base_dir: Path) -> AuthConfig | None:
    if raw is None:
        return None
    tokens = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw.get("tokens", [])):
        digest = str(entry["sha256"]).lower()
        where = doc.location(("auth", "tokens", index, "sha256"))
        if not _HEX64.match(digest):
            raise ConfigError("sha256 must be the 64 hex digits of the token's SHA-256", where,
                              hint="mint a token with `pgmcp token new --principal NAME`; it prints the line")
        if digest in seen:
            raise ConfigError(f"this token hash is already given to auth.tokens[{seen[digest]}]", where,
                              hint="every token must be different; mint a new one")
        seen[digest] = index
        tokens.append(StaticToken(entry["principal"], digest, dict(entry.get("claims", {}))))
    jwt = _jwt(doc, raw["jwt"], base_dir) if "jwt" in raw else None
    if not tokens and jwt is None:
        raise ConfigError("auth configures no way to authenticate", doc.location(("auth",)),
                          hint="add auth.tokens (pgmcp token new) or auth.jwt, or remove auth")
    limits = tuple((name, parse_rate_limit(doc, ("auth", "rate_limits", name), value))
                   for name, value in raw.get("rate_limits", {}).items())
    return AuthConfig(
        tokens=tuple(tokens), jwt=jwt,
        rate_limit=parse_rate_limit(doc, ("auth", "rate_limit"), raw["rate_limit"]) if "rate_limit" in raw else None,
        rate_limits=limits, resource_url=raw.get("resource_url"), issuer_url=raw.get("issuer_url"),
    )


def _jwt(doc: YamlDocument, raw: dict[str, Any], base_dir: Path) -> JWTConfig:
    given = [k for k in _KEY_SOURCES if raw.get(k)]
    if len(given) != 1:
        raise ConfigError(
            "auth.jwt needs exactly one key source" + (f", not {' and '.join(given)}" if given else ""),
            doc.location(("auth", "jwt")), hint="give one of jwks_url, jwks_file or public_key_file")
    values = dict(raw)
    for key in ("jwks_file", "public_key_file"):
        if values.get(key):
            path = (base_dir / values[key]).resolve()
            if not path.is_file():
                raise ConfigError(f"{key} {values[key]!r} does not exist", doc.location(("auth", "jwt", key)),
                                  hint=f"paths are relative to the config file's folder, {base_dir}")
            values[key] = str(path)
    if "leeway" in values:
        values["leeway"] = parse_duration(values["leeway"], doc.location(("auth", "jwt", "leeway")))
    return JWTConfig(**values)


def load_access(
    doc: YamlDocument, path: PathKey, raw: list[dict[str, Any]] | None,
    policy_refs: Callable[[PathKey, list[str]], tuple[str, ...]],
) -> tuple[AccessEntry, ...] | None:
    if raw is None:
        return None
    entries = []
    for index, entry in enumerate(raw):
        where = (*path, index)
        if not entry.get("principals") and not entry.get("groups"):
            raise ConfigError("access entry names no principal and no group", doc.location(where),
                              hint="add principals: [alice] or groups: [analysts]")
        policies = policy_refs((*where, "policies"), entry["policies"]) if entry.get("policies") else ()
        entries.append(AccessEntry(frozenset(entry.get("principals", [])), frozenset(entry.get("groups", [])),
                                   policies, doc.location(where)))
    return tuple(entries)
