"""Who an MCP request comes from: the principal of its verified bearer token, if any.

The SDK's bearer middleware verifies the token (`pgmcp.auth.verifier`) and puts the user in
the HTTP request's scope (and a context variable); pgmcp only reads it here. No token (stdio,
or HTTP without `auth`) gives None: the runtime then runs the call as the local user, unless
it requires authentication, in which case it refuses.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

from pgmcp.auth.principal import Principal


def principal_of(ctx: Any) -> Principal | None:
    """The principal of the request `ctx` belongs to (or of the current HTTP request)."""
    token: Any = None
    try:
        request = ctx.request_context.request
    except Exception:  # no MCP context (static resources, direct calls)
        request = None
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser):
        token = user.access_token
    if token is None:
        token = get_access_token()
    if token is None:  # stdio, or HTTP without auth: the verifier (PyJWT, cryptography) is never loaded
        return None
    from pgmcp.auth.verifier import PrincipalToken

    return token.principal() if isinstance(token, PrincipalToken) else None
