"""The checker gives the same verdicts on pure-Python sqlglot as with sqlglotc's compiled modules.

sqlglotc drops compiled modules into sqlglot's package folder, where they shadow the .py files.
A subprocess here hides those compiled modules (an import hook that loads only source files for
`sqlglot.*`), proves the pure path is the one running, and judges the same statements.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec

REPO = Path(__file__).parent.parent

STATEMENTS = [
    "SELECT id, name FROM users WHERE id = 1 OR name ILIKE 'a%'",
    "SELECT password_hash FROM users",
    "SELECT * FROM secrets",
    "SELECT o.id, count(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY 1 ORDER BY 2 DESC",
    "SELECT pg_sleep(1)",
    'SELECT "PG_SLEEP"(1), (id).pg_sleep FROM users',
    "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
    "SELECT 1; DROP TABLE users",
    "EXPLAIN SELECT id FROM orders",
    "SELECT lower(name), date_trunc('day', now()) FROM users LIMIT 5000",
]

PURE = r"""
import importlib.machinery, json, sys

class SourceOnly(importlib.machinery.PathFinder):
    # Load sqlglot.* from .py files only, hiding sqlglotc's compiled modules.
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "sqlglot" and not fullname.startswith("sqlglot."):
            return None
        loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]
        for entry in path or sys.path:
            spec = importlib.machinery.FileFinder(entry or ".", *loaders).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None

sys.meta_path.insert(0, SourceOnly)
import sqlglot.parser, sqlglot.tokens
assert sqlglot.parser.__file__.endswith(".py"), sqlglot.parser.__file__
from pathlib import Path
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
policy = compile_policy(load_policy_spec(["shop-analyst"], Path(sys.argv[1])))
out = []
for sql in json.loads(sys.stdin.read()):
    v = check(sql, policy)
    out.append([v.allowed, sorted({x.rule for x in v.violations}), v.rewritten_sql])
print(json.dumps({"parser": sqlglot.parser.__file__, "verdicts": out}))
"""


def test_pure_python_sqlglot_gives_the_same_verdicts() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PURE, str(REPO)], input=json.dumps(STATEMENTS),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["parser"].endswith("parser.py")
    policy = compile_policy(load_policy_spec(["shop-analyst"], REPO))
    here = []
    for sql in STATEMENTS:
        verdict = check(sql, policy)
        here.append([verdict.allowed, sorted({v.rule for v in verdict.violations}), verdict.rewritten_sql])
    assert result["verdicts"] == here
    assert [allowed for allowed, _, _ in here] == [True, False, False, True, False, False, False, False, True, True]
