"""`pgmcp ARGS` run in-process, through the console entry point's `main`: exit code, stdout and
stderr as a process would give them, without starting an interpreter and importing pgmcp again
for every call (under coverage, a second or more each).

What only a real process shows keeps a real process in the modules that use this: the console
script and `python -m pgmcp` (tests/test_cli_check_sql.py), `python -m pgmcp.cli.<module>` once
per ops command (tests/test_cli_ops.py), a real terminal on stdin (tests/test_cli_init.py),
signals (tests/test_demo.py), stdout reserved for MCP (tests/test_mcp_stdio.py), secrets in a
debug session's output (tests/test_redaction_session.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from pgmcp.cli.main import main

# Settings of the environment a test never inherits: a developer's own keys or pgmcp settings.
FOREIGN = ("OPENAI_", "ANTHROPIC_", "PGMCP_")


def run_pgmcp(
    *argv: str, cwd: Path | None = None, stdin: str = "", env: Mapping[str, str] | None = None,
    clean: bool = False, terminal: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`pgmcp ARGV` from `cwd`, reading `stdin` (which says it is a terminal when `terminal`),
    with `env` added to the environment (and, when `clean`, the `FOREIGN` variables removed);
    asserts that no traceback was printed."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if cwd is not None:
            mp.chdir(cwd)
        if clean:
            for name in [n for n in os.environ if n.startswith(FOREIGN)]:
                mp.delenv(name)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        mp.setattr(sys, "stdin", _Terminal(stdin) if terminal else io.StringIO(stdin))
        code = main(list(argv))
    result = subprocess.CompletedProcess(["pgmcp", *argv], code, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


class _Terminal(io.StringIO):
    """Typed input that says it comes from a terminal (the real terminal: a pty, in a process)."""

    def isatty(self) -> bool:
        return True
