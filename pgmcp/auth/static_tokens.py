"""Static bearer tokens: minted here, stored in the config only as their SHA-256 (hex).

A presented token is hashed and compared with every configured hash in constant time
(`hmac.compare_digest`, and no early exit), so neither the token nor which entry it is close
to leaks through timing. Tokens are 32 random bytes, URL-safe base64, prefixed `pgmcp_` so a
leaked one is recognisable in secret scanners.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pgmcp.config.model import StaticToken

PREFIX = "pgmcp_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mint_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def config_line(principal: str, token: str) -> str:
    """The `auth.tokens` entry for `token` (YAML flow style, one line)."""
    return f"- {{principal: {principal}, sha256: {token_hash(token)}}}"


def find_token(tokens: tuple[StaticToken, ...], presented: str) -> StaticToken | None:
    """The configured token `presented` is, compared in constant time with every entry."""
    digest = token_hash(presented).encode()
    found = None
    for entry in tokens:
        if hmac.compare_digest(digest, entry.sha256.encode()):
            found = entry
    return found
