"""The principal a request runs as, and the context variable the MCP layer sets for a call.

On stdio (and `pgmcp ask`, `check-sql`) there is one principal, the local user, who holds the
config and its credentials: every database, the databases' own policies, no claims (so a row
filter that needs a claim refuses). Over HTTP with `auth` configured the principal comes from
the verified bearer token. A runtime that requires authentication refuses a call made
without a principal instead of falling back to the local user.
"""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    name: str
    groups: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    local: bool = False  # the stdio/CLI user: not limited by access lists

    def claims_key(self) -> str:
        """The claims as canonical JSON: the key of the per-principal policy caches."""
        return json.dumps(dict(self.claims), sort_keys=True, separators=(",", ":"), default=str)


def local_principal(claims: Mapping[str, Any] | None = None) -> Principal:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment (containers)
        user = "local"
    return Principal(f"local:{user}", frozenset(), dict(claims or {}), local=True)


_current: ContextVar[Principal | None] = ContextVar("pgmcp_principal", default=None)


def current_principal() -> Principal | None:
    return _current.get()


@contextlib.contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Run the block as `principal` (the MCP tool wrapper and resource readers use this)."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)


def groups_from(claims: Mapping[str, Any], claim: str = "groups") -> frozenset[str]:
    """The groups a token's claims list (a list of strings, or one string)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, (list, tuple)):
        return frozenset(str(v) for v in value if isinstance(v, (str, int)))
    return frozenset()
