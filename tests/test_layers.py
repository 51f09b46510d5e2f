"""The package tree is the flow, and imports point one way: a stage may import only the stages
below it (and its own package). Every import counts, also those inside functions and under
`TYPE_CHECKING`: a lazy import is still a dependency, and a type-only one is still a cycle.

The order is what the code needs: `schema/` (snapshots, introspection) sits below `policy/`,
because the checker reads snapshots and the schema filter takes the policy as a protocol;
`observe/` (logs, redaction, audit, metrics) sits above the policy (the audit records
verdicts) and below everything that runs requests. `errors.py` and the package root import
nothing of pgmcp.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pgmcp"

# Rank of each top-level part of pgmcp: an import must go to a strictly lower rank, or stay in
# its own part. Parts of equal rank are independent of each other (db and llm meet only in ask).
RANKS: dict[str, int] = {
    "": 0,  # pgmcp/__init__.py
    "errors": 0,
    "documents": 1,
    "config": 2,
    "schema": 3,
    "policy": 4,
    "observe": 5,
    "db": 6,
    "llm": 6,
    "ask": 7,
    "auth": 7,  # who calls over HTTP and what they may use: the runtime and the MCP layer ask it
    "grants": 7,  # the policy compiled into GRANTs and RLS, and the privilege audit the runtime runs
    "service": 8,
    "mcp": 9,
    "cli": 10,
    "demo": 11,  # the outer layer's own order: the CLI starts the MCP server, the demo drives both
    "__main__": 12,  # `python -m pgmcp`
}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "pgmcp"]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            if node.module and node.module.split(".")[0] == "pgmcp":
                if node.module == "pgmcp":  # `from pgmcp import x`: x may be a subpackage
                    found += [(node.lineno, f"pgmcp.{alias.name}") for alias in node.names]
                else:
                    found.append((node.lineno, node.module))
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def allowed(importer: str, imported: str) -> bool:
    src, dst = part_of(importer), part_of(imported)
    if dst not in RANKS:  # pgmcp.__version__ and the like
        dst = ""
    return src == dst or RANKS[dst] < RANKS[src]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_rank() -> None:
    parts = {part_of(module_name(p)) for p in SOURCES}
    assert parts <= set(RANKS), f"give these a rank in RANKS: {sorted(parts - set(RANKS))}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    importer = module_name(path)
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {importer} imports {imported}"
        for line, imported in imports_of(path)
        if not allowed(importer, imported)
    ]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("importer", "imported", "ok"),
    [
        ("pgmcp.mcp.server", "pgmcp.service.runtime", True),
        ("pgmcp.service.runtime", "pgmcp.mcp.models", False),
        ("pgmcp.errors", "pgmcp.policy.verdict", False),
        ("pgmcp.db.executor", "pgmcp.llm.base", False),
        ("pgmcp.ask.pipeline", "pgmcp.db.result", True),
        ("pgmcp.policy.checker", "pgmcp.policy.verdict", True),
        ("pgmcp.cli.serve", "pgmcp", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, ok: bool) -> None:
    assert allowed(importer, imported) is ok
