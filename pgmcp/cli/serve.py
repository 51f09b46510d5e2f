"""`pgmcp serve`: run the MCP server on stdio (the default) or streamable HTTP.

stdout belongs to the protocol in stdio mode, so logging goes to stderr before anything else
happens, and every startup problem (a missing or broken config, a broken policy, a provider
that cannot be built) is one message on stderr naming file, line and key, with exit code 2
and no traceback. Databases that are down do not stop the server: their tools answer with
a clear error until they come back. Started in a terminal (stdin a TTY), it says in one line
on stderr that it speaks MCP on stdio and how to connect a host.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import sys
from collections.abc import Sequence

import anyio

from pgmcp.config.loader import find_config_path, load_config
from pgmcp.config.model import Config, LoggingConfig
from pgmcp.errors import PgmcpError, UsageError
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
    parser.add_argument("--stateless", action="store_true",
                        help="with --transport http: stateless streamable HTTP (no sessions), so several "
                        "replicas can sit behind a load balancer without session affinity")


def run(args: argparse.Namespace) -> int:
    setup_logging(LoggingConfig())  # before anything can log: stderr only
    startup_without_collector()
    try:
        config = load_config(find_config_path(args.config))
        if config.logging != LoggingConfig():  # set up again only if it differs: a loguru sink costs ~6 ms
            setup_logging(config.logging)
        refuse_unservable(config, args.transport, args.stateless)
        if args.transport == "http" and config.auth is not None:
            from pgmcp.auth.verifier import auth_settings

            auth_settings(config.auth, args.host, args.port)  # a bad URL is a config error, before serving
        # Compiles the policies and builds the provider: fail early.
        runtime = Runtime(config, write_stats=True, auth_required=args.transport == "http" and bool(config.auth))
    except PgmcpError as err:
        from pgmcp.cli.ops import error_exit

        started(freeze=False)
        return error_exit(err)
    try:
        if args.transport == "http":
            anyio.run(serve_http, config, runtime, args.host, args.port, args.stateless)
        else:
            if sys.stdin.isatty():  # a person started it in a terminal: say what it waits for
                print(tty_notice(config), file=sys.stderr, flush=True)
            anyio.run(serve_stdio, config, runtime)
    except KeyboardInterrupt:
        pass
    finally:
        started(freeze=False)
    return EXIT_OK


def startup_without_collector() -> None:
    """Pause Python's cycle collector while the server starts (`started` ends the pause).

    Starting makes long-lived objects only (modules, classes, the SDK's pydantic models, the
    compiled policies, the schema snapshot), and the collector kept walking them as they piled
    up: measured, about a tenth of the CPU `serve` spends before its first answer. Once
    started, they are moved out of its reach for good (`gc.freeze`), so later full
    collections do not walk them either. (`pgmcp.cli.main` does the same around importing a
    command.)
    """
    gc.disable()


def started(*, freeze: bool = True) -> None:
    """End the pause of `startup_without_collector` (any number of calls): once the server is up,
    with what starting made frozen; on the way out (a refused config, the end of serving: maybe
    in a test's process) without, so that nothing else is kept for good."""
    if not gc.isenabled():
        if freeze:
            gc.freeze()
        gc.enable()


def tty_notice(config: Config) -> str:
    """The one line `serve` prints on a terminal: it speaks MCP on stdio, and how to connect a host."""
    where = f" --config {config.path}" if config.path else ""
    return (
        "pgmcp speaks MCP on stdin/stdout and waits for an MCP host, not for typing: add "
        f"`pgmcp serve{where}` as a stdio server to your host (Claude Desktop, Claude Code, VS Code, ...), "
        "or run `pgmcp serve --transport http` for network clients; Ctrl-C stops it."
    )


async def serve_stdio(config: Config, runtime: Runtime) -> None:
    # The first answer needs both the MCP SDK (about a second of imports: Python work) and the
    # pools and schema snapshots (mostly waiting for PostgreSQL), so the second starts first and
    # runs while a worker thread imports the first. The lifespan's start() waits for it.
    starting = asyncio.ensure_future(runtime.start())
    await anyio.to_thread.run_sync(importlib.import_module, "pgmcp.mcp.server")
    from pgmcp.mcp.server import build_server, run_stdio

    server = build_server(config, runtime_factory=lambda _: runtime)
    starting.add_done_callback(lambda _: started())  # imports done; the collector on once ready
    try:
        await run_stdio(server)
    finally:
        if not starting.done():
            starting.cancel()


def refuse_unservable(config: Config, transport: str, stateless: bool) -> None:
    """Refuse, before anything starts, the combinations that cannot work (docs/deployment.md)."""
    if stateless and transport != "http":
        raise UsageError("--stateless is an option of the HTTP transport", hint="add --transport http")
    if stateless and config.llm.provider == "client":
        raise UsageError(
            "--stateless cannot serve the query tool with llm.provider 'client': asking the client's "
            "model (sampling) needs the session that stateless HTTP does not keep, for clients on the "
            "2025 protocol versions",
            hint="configure llm.provider openai or anthropic for stateless replicas, or serve without --stateless",
        )
    limited = [db.name for db in config.databases if db.access is not None]
    if transport == "http" and limited and config.auth is None:
        raise UsageError(
            f"databases {', '.join(limited)} have access lists, but HTTP without auth cannot tell who calls",
            hint="configure auth (tokens or jwt), or remove the access lists",
        )


async def serve_http(config: Config, runtime: Runtime, host: str, port: int, stateless: bool = False) -> None:
    import uvicorn
    from loguru import logger

    from pgmcp.mcp.server import build_server

    auth, verifier = None, None
    if config.auth is not None:
        from pgmcp.auth.verifier import PgmcpTokenVerifier, auth_settings

        auth, verifier = auth_settings(config.auth, host, port), PgmcpTokenVerifier(config.auth)
    server_app = build_server(config, runtime_factory=lambda _: runtime, auth=auth, token_verifier=verifier)
    app = server_app.streamable_http_app(host=host, stateless_http=stateless)
    # log_config=None: uvicorn's records go through the stdlib root logger into loguru (stderr).
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    started()  # imports and the app are built; the runtime starts in the lifespan
    logger.info("serving MCP at http://{}:{}/mcp (health: /healthz, metrics: /metrics){}{}", host, port,
                ", bearer tokens required" if auth else "", ", stateless" if stateless else "")
    await server.serve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgmcp serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
