"""The MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`, the protocol's reference
tool, in Node) against `pgmcp serve --config FILE`: it lists the tools and runs execute_sql.

The inspector is installed from the npm registry into $PGMCP_INSPECTOR_DIR (default
~/.cache/pgmcp/inspector) by .ci/run; without node or that install the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, serve_command, write_config

INSPECTOR_DIR = Path(os.environ.get("PGMCP_INSPECTOR_DIR", "~/.cache/pgmcp/inspector")).expanduser()
INSPECTOR = INSPECTOR_DIR / "node_modules" / ".bin" / "mcp-inspector"
INSTALL = f"npm install --prefix {INSPECTOR_DIR} @modelcontextprotocol/inspector"
RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def inspector() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the MCP Inspector CLI needs Node.js")
    if not INSPECTOR.exists():
        pytest.skip(f"the MCP Inspector is not installed in {INSPECTOR_DIR} (run: {INSTALL})")
    return INSPECTOR


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str) -> Path:
    return write_config(tmp_path_factory.mktemp("inspector"), pg_database, shop_role, {"provider": "client"})


def run_inspector(inspector: Path, config_path: Path, *method: str) -> Any:
    # Everything after `--` is the server command; the inspector's own --config is not ours.
    command = [str(inspector), "--cli", "--", *serve_command(config_path), *method]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=config_path.parent
    )
    assert done.returncode == 0, f"inspector failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_inspector_lists_the_tools(inspector: Path, config_path: Path) -> None:
    listed = run_inspector(inspector, config_path, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}
    assert names == {
        "query", "execute_sql", "check_sql", "list_databases", "describe_schema", "refresh_schema"
    }
    assert all(tool["annotations"]["readOnlyHint"] for tool in listed["tools"])


def test_inspector_runs_execute_sql(inspector: Path, config_path: Path) -> None:
    answer = run_inspector(
        inspector, config_path, "--method", "tools/call", "--tool-name", "execute_sql",
        "--tool-arg", f"sql={COUNT_ORDERS}", "--tool-arg", "database=shop",
    )
    assert answer.get("isError") is not True, answer
    assert answer["structuredContent"]["rows"] == [[4]]
    assert "<database-result>" in answer["content"][0]["text"]
