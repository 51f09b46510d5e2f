"""The MCP SDK's resource-server hooks for pgmcp: a `TokenVerifier` and its `AuthSettings`.

The SDK does the HTTP part: it reads `Authorization: Bearer ...`, calls `verify_token`, and
answers 401 with `WWW-Authenticate: Bearer ... resource_metadata="..."` when no valid token
came, and it serves the OAuth protected-resource metadata (RFC 9728) at
`/.well-known/oauth-protected-resource/mcp`. pgmcp decides who the token's bearer is:
a static token (by its SHA-256, constant time), else a JWT (`pgmcp.auth.jwt_verifier`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from loguru import logger
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from pgmcp.auth.jwt_verifier import JWTError, JWTVerifier
from pgmcp.auth.principal import Principal, groups_from
from pgmcp.auth.static_tokens import find_token
from pgmcp.config.model import AuthConfig
from pgmcp.errors import ConfigError, SourceLocation


class PrincipalToken(AccessToken):
    """An access token that says which pgmcp principal it stands for."""

    groups: tuple[str, ...] = ()

    def principal(self) -> Principal:
        return Principal(self.client_id, frozenset(self.groups), dict(self.claims or {}))


class PgmcpTokenVerifier:
    """`mcp.server.auth.provider.TokenVerifier` over `auth.tokens` and `auth.jwt`."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.jwt = JWTVerifier(config.jwt) if config.jwt is not None else None

    async def verify_token(self, token: str) -> AccessToken | None:
        entry = find_token(self.config.tokens, token)
        if entry is not None:
            claims: dict[str, Any] = dict(entry.claims)
            return PrincipalToken(token=token, client_id=entry.principal, subject=entry.principal, scopes=[],
                                  claims=claims, groups=tuple(sorted(groups_from(claims))))
        if self.jwt is None:
            logger.info("bearer token refused: no static token matches")
            return None
        try:
            verified = await self.jwt.verify(token)
        except JWTError as exc:
            logger.info("bearer token refused: {}", exc)
            return None
        groups = groups_from(verified.claims, self.jwt.config.groups_claim)
        return PrincipalToken(token=token, client_id=verified.principal, subject=verified.principal, scopes=[],
                              expires_at=verified.expires_at, claims=verified.claims, groups=tuple(sorted(groups)))


def auth_settings(config: AuthConfig, host: str, port: int) -> AuthSettings:
    """The SDK's settings: this server as a resource server (no authorization server here)."""
    resource = config.resource_url or f"http://{_host_for_url(host)}:{port}/mcp"
    issuer = config.issuer_url
    if issuer is None and config.jwt is not None and config.jwt.issuer.startswith(("http://", "https://")):
        issuer = config.jwt.issuer
    if issuer is None:
        parts = urlsplit(resource)
        issuer = f"{parts.scheme}://{parts.netloc}"
    # validate_token_resource=False: the JWT verifier checks `aud` itself; static tokens have none.
    try:
        return AuthSettings(issuer_url=issuer, resource_server_url=resource,  # type: ignore[arg-type]
                            validate_token_resource=False)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).splitlines()[0]
        raise ConfigError(f"auth.resource_url or auth.issuer_url is not a usable URL: {first}",
                          SourceLocation("auth"), hint="write e.g. https://pgmcp.example.com/mcp") from exc


def _host_for_url(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
