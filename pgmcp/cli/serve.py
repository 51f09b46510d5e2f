"""`pgmcp serve`: run the MCP server on stdio (the default) or streamable HTTP.

stdout belongs to the protocol in stdio mode, so logging goes to stderr before anything else
happens, and every startup problem (a missing or broken config, a broken policy, a provider
that cannot be built) is one message on stderr naming file, line and key, with exit code 2
and no traceback. Databases that are down do not stop the server: their tools answer with
a clear error until they come back.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import Sequence

import anyio

from pgmcp.config.loader import find_config_path, load_config
from pgmcp.config.model import Config, LoggingConfig
from pgmcp.errors import PgmcpError
from pgmcp.observe.logs import setup_logging
from pgmcp.service.runtime import Runtime

EXIT_OK, EXIT_ERROR = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="config file (default: $PGMCP_CONFIG, else ./pgmcp.yaml)")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                        help="stdio for a local MCP host (default); http serves streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on with --transport http")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on with --transport http")


def run(args: argparse.Namespace) -> int:
    setup_logging(LoggingConfig())  # before anything can log: stderr only
    try:
        config = load_config(find_config_path(args.config))
        setup_logging(config.logging)
        runtime = Runtime(config, write_stats=True)  # compiles the policies and builds the provider: fail early
    except PgmcpError as err:
        from pgmcp.cli.ops import error_exit

        return error_exit(err)
    try:
        if args.transport == "http":
            anyio.run(serve_http, config, runtime, args.host, args.port)
        else:
            anyio.run(serve_stdio, config, runtime)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


async def serve_stdio(config: Config, runtime: Runtime) -> None:
    # The first answer needs both the MCP SDK (about a second of imports: Python work) and the
    # pools and schema snapshots (mostly waiting for PostgreSQL), so the second starts first and
    # runs while a worker thread imports the first. The lifespan's start() waits for it.
    starting = asyncio.ensure_future(runtime.start())
    await anyio.to_thread.run_sync(importlib.import_module, "pgmcp.mcp.server")
    from pgmcp.mcp.server import build_server

    try:
        await build_server(config, runtime_factory=lambda _: runtime).run_stdio_async()
    finally:
        if not starting.done():
            starting.cancel()


async def serve_http(config: Config, runtime: Runtime, host: str, port: int) -> None:
    import uvicorn
    from loguru import logger

    from pgmcp.mcp.server import build_server

    app = build_server(config, runtime_factory=lambda _: runtime).streamable_http_app(host=host)
    # log_config=None: uvicorn's records go through the stdlib root logger into loguru (stderr).
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    logger.info("serving MCP at http://{}:{}/mcp (health: /healthz, metrics: /metrics)", host, port)
    await server.serve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
