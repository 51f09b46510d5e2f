"""Keeping secrets out of everything pgmcp writes: logs, audit lines, error messages.

Two nets: the exact values registered with `register_secret` (config loading registers every
password and API key), and patterns for secrets pgmcp was never told about (a password inside
a DSN, `password=...` pairs, vendor API keys, bearer tokens). `redact` applies both.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Mapping
from urllib.parse import quote, quote_plus

from pgmcp.config.model import Secret

MASK = "***"
# Registered secrets shorter than this are not replaced verbatim: masking every "ab" in every
# log line would make logs unreadable. They are still masked where a pattern finds them (DSNs,
# password=...). Real passwords and API keys are far longer.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None

# password=... / "api_key": "..." / PGPASSWORD=... (libpq key/value DSNs, JSON, headers, env).
_PAIR = re.compile(
    r"(?P<pre>\$\{|\.)?"
    r"(?P<head>\b(?:\w*(?:password|passwd|secret)|pwd|api[_-]?key|access[_-]?token|token|x-api-key)"
    r"[\"']?\s*(?P<sep>[=:])\s*)"
    r"(?:(?P<q>['\"])(?:(?!(?P=q))[^\\]|\\.)*(?P=q)|(?P<bare>[^\s,;&'\"})\]]+))",
    re.IGNORECASE,
)


def _mask_pair(match: re.Match[str]) -> str:
    """The masked form of one key-value pair, or the text as it was where it is no pair.

    A quoted value keeps its quotes so JSON stays JSON. Not pairs, so that messages about a
    secret stay readable: a variable reference (the name in `${HR_DB_PASSWORD:-x}` is no key,
    the value `${HR_DB_PASSWORD}` no secret), and a config key path pgmcp writes in front of
    its message (`at databases.hr.password: environment variable ... is not set`: a dotted
    name, `:` and an unquoted word; what pgmcp writes there never holds the value of a secret
    key, `pgmcp.documents.docschema` hides it).
    """
    pre, bare = match.group("pre") or "", match.group("bare")
    if pre == "${" or (bare is not None and bare.startswith("${")):
        return match.group(0)
    if pre == "." and match.group("sep") == ":" and bare is not None:
        return match.group(0)
    quote_mark = match.group("q") or ""
    return f"{pre}{match.group('head')}{quote_mark}{MASK}{quote_mark}"


_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # scheme://user:password@host -> scheme://user:***@host (greedy up to the last @ of the token,
    # so an unescaped @ inside the password is covered too)
    (re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s'\"]*:)[^\s'\"]*(?=@)"), rf"\g<head>{MASK}"),
    (_PAIR, _mask_pair),
    (re.compile(r"\b(?P<head>Bearer\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE), rf"\g<head>{MASK}"),
    (re.compile(r"(?<![A-Za-z0-9])sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"), MASK),
)


# Every match of a pattern above holds one of these (under the same case-insensitive matching),
# so a text without any of them needs none of the patterns: one search instead of four.
_NEEDLES = re.compile(r"://|password|passwd|secret|pwd|api|token|bearer|sk-", re.IGNORECASE)


def _variants(value: str) -> set[str]:
    # A secret may show up escaped: percent-encoded in a DSN, or JSON-escaped in a dump.
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


def register_secret(value: str) -> None:
    """Remember `value` (a password, an API key) so that `redact` masks it wherever it appears."""
    global _secret_re
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.update(v for v in _variants(value) if len(v) >= MIN_SECRET_LENGTH)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(_secrets, key=lambda s: (-len(s), s))
        _secret_re = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets_in(value: object) -> None:
    """Register every `Secret` inside a config value (a `Config`, `DatabaseConfig`, ...).

    One call after loading the config covers every password and API key it holds, including
    ones added to the config classes later.
    """
    if isinstance(value, Secret):
        register_secret(value.value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            register_secrets_in(getattr(value, f.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            register_secrets_in(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            register_secrets_in(item)


def redact(text: str) -> str:
    """`text` with registered secrets, DSN passwords and API-key shapes replaced by `***`."""
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if _NEEDLES.search(text) is None:
        return text
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


def redact_data(value: object) -> object:
    """`redact` applied to every string inside a JSON-like value (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value
