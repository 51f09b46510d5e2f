"""The operational HTTP routes served beside `/mcp`: `/livez`, `/healthz` and `/metrics`.

With `auth` configured they stay open (no token) and `/healthz` shows only its status.

They only exist on the streamable HTTP transport (stdio has no HTTP). `/livez` answers 200
whenever the process answers at all (a liveness probe: restart it only if this fails).
`/healthz` answers 200 when every configured database is up and 503 when one is down
("degraded") or the server is still starting, with `Runtime.health()` as the JSON body, so a
load balancer and a person read the same thing (a readiness probe: a database that comes back
is re-probed in the background, so it turns 200 again without any tool call). `/metrics` is
the Prometheus text exposition. See docs/health.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pgmcp.observe.metrics import CONTENT_TYPE, render_prometheus

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from pgmcp.service.runtime import Runtime


@dataclass
class RuntimeSlot:
    """Where the server's lifespan puts the running `Runtime`, for routes outside MCP."""

    runtime: Runtime | None = None


def add_ops_routes(server: MCPServer[Any], slot: RuntimeSlot, *, public: bool = True) -> None:
    """Register `/livez`, `/healthz` and `/metrics` on `server` (used by its streamable HTTP app).

    All stay open without a token (probes and scrapers have none). With `public` False (auth
    configured) `/healthz` answers only its status, no database names or errors; `/metrics`
    holds counters labelled by database, tool and status, never a principal or a row.
    """

    @server.custom_route("/livez", methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def livez(_: Request) -> Response:
        return JSONResponse({"status": "alive", "started": slot.runtime is not None})

    # custom_route is unannotated in the SDK, hence the ignores.
    @server.custom_route("/healthz", methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def healthz(_: Request) -> Response:
        runtime = slot.runtime
        if runtime is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        health = await runtime.health()
        code = 200 if health["status"] == "ok" else 503
        return JSONResponse(health if public else {"status": health["status"]}, status_code=code)

    @server.custom_route("/metrics", methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def metrics(_: Request) -> Response:
        return Response(render_prometheus(), headers={"content-type": CONTENT_TYPE})
