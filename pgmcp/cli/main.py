"""`pgmcp`: the console entry point.

Every subcommand is a module with `add_arguments(parser)` and `run(args) -> int`, listed once
in `COMMANDS` (name, module, help) and imported only when chosen, so `pgmcp --help` stays fast.
Exit codes: 0 success, 1 the check found something (a refusal, a failing test), 2 a usage,
config or internal error. A user mistake is a message, never a traceback (set PGMCP_DEBUG=1
or pass --debug to see one for an internal error).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from pgmcp import __version__
from pgmcp.errors import PgmcpError

EXIT_USAGE = 2


class Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# (name, module, one-line help); "policy test" is a nested command.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "pgmcp.demo.cli", "run pgmcp on a throwaway PostgreSQL with a sample shop database"),
    ("init", "pgmcp.cli.init", "connect to your database and write a first pgmcp.yaml and policy to review"),
    ("serve", "pgmcp.cli.serve", "run the MCP server (stdio, or streamable HTTP)"),
    ("ask", "pgmcp.cli.ask", "ask a question in plain language from the terminal"),
    ("check-sql", "pgmcp.cli.check_sql", "lint SQL files against a policy (for terminals and CI)"),
    ("check-config", "pgmcp.cli.check_config", "validate a config and its policies (--connect: live)"),
    ("explain-policy", "pgmcp.cli.explain_policy", "trace every rule behind one decision"),
    ("stats", "pgmcp.cli.stats", "show the metrics of a running HTTP server, or of a one-off session"),
)
POLICY_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("test", "pgmcp.cli.policy_test", "run the tests: list of policy documents"),
    ("grants", "pgmcp.cli.policy_grants", "print the SQL that makes the database enforce a policy too"),
)
TOKEN_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("new", "pgmcp.cli.token", "mint a bearer token for the HTTP transport and print its config line"),
)
# Commands with subcommands: (name, help, subcommands).
NESTED: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("policy", "policy tools: `pgmcp policy test POLICY...`, `pgmcp policy grants`", POLICY_COMMANDS),
    ("token", "bearer tokens: `pgmcp token new --principal NAME`", TOKEN_COMMANDS),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"pgmcp: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _module(name: str) -> Command:
    return cast(Command, importlib.import_module(name))


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="pgmcp", description="A PostgreSQL server for the Model Context Protocol.")
    parser.add_argument("--version", action="version", version=f"pgmcp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        sub = subs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module=module)
        _accept_debug(sub)
        if chosen == name:  # import a command's module only when it runs
            _module(module).add_arguments(sub)
    for group, group_help, commands in NESTED:
        nested = subs.add_parser(group, help=group_help)
        nested_subs = nested.add_subparsers(dest=f"{group}_command", metavar="COMMAND")
        for name, module, help_text in commands:
            sub = nested_subs.add_parser(name, help=help_text, description=help_text)
            sub.set_defaults(module=module)
            _accept_debug(sub)
            if chosen == group:
                _module(module).add_arguments(sub)
    return parser


def _imported(build: Callable[[], argparse.ArgumentParser], *, freeze: bool) -> argparse.ArgumentParser:
    """Run `build` (it imports the chosen command's modules) with Python's cycle collector off;
    with `freeze` (the process's own entry point, not a call from other code), then move
    everything made so far out of the collector's reach (`gc.freeze`).

    An import makes long-lived objects only (modules, classes, functions), and the collector
    kept walking them as they piled up: a few hundredths of a second of a short command's CPU,
    and again in every later full collection of a long-running one.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return build()
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def _accept_debug(sub: argparse.ArgumentParser) -> None:
    # `pgmcp check-sql --debug ...` is how people type it after reading an error message;
    # main() reads --debug from anywhere in argv, so the subcommand only has to accept it.
    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _chosen(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or os.environ.get("PGMCP_DEBUG") == "1"
    try:
        parser = _imported(lambda: build_parser(_chosen(args_list)), freeze=argv is None)
        args = parser.parse_args(args_list)
        module = getattr(args, "module", None)
        if module is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return _module(module).run(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pgmcp stats | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as if killed by SIGPIPE, like other Unix tools
    except PgmcpError as exc:
        print(f"pgmcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(f"pgmcp: internal error: {type(exc).__name__}: {exc}"
              + ("" if debug else " (run with --debug for the traceback)"), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
