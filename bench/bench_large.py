"""Very large statements: `check` against a bare `sqlglot.parse` of the same text (issue 10).

Issue 10 asks that a 200,000-item IN list and 4,000 CTEs are each judged in well under a
second. The statements are those of tests/test_large_statements.py (the shipped shop-analyst
policy with `limits.max_sql_bytes` lifted, no live schema: its row filter on `orders` and its
row cap make the checker rewrite each one, generate the text and check it again):

- `in-list`: `SELECT id FROM orders WHERE id IN (0, 1, ..., 199999)` (1.5 MB);
- `ctes`: 4,000 independent CTEs, `WITH c0 AS (SELECT 0 AS x), ... SELECT x FROM c3999`;
- `cte-chain`: 4,000 CTEs each reading the one before, the first reading `orders`.

For each, interleaved over `--runs` rounds, in this process: `check(sql)` and
`sqlglot.parse(sql, read="postgres")`, CPU time (`time.process_time`: the shared machine's
load stretches wall times), medians; `--whole` adds `check` with long lists parsed item by
item (`pgmcp.policy.longlists` off), the path every IN list took before. The load average is
printed with the figures.

    .venv/bin/python bench/bench_large.py [--runs 3] [--whole] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlglot

from pgmcp.policy import checker
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec

ROOT = Path(__file__).resolve().parent.parent
STATEMENTS = {
    "in-list": "SELECT id FROM orders WHERE id IN (" + ", ".join(str(i) for i in range(200_000)) + ")",
    "ctes": "WITH " + ", ".join(f"c{i} AS (SELECT {i} AS x)" for i in range(4_000)) + " SELECT x FROM c3999",
    "cte-chain": (
        "WITH c0 AS (SELECT id, tenant_id FROM orders), "
        + ", ".join(f"c{i} AS (SELECT id, tenant_id FROM c{i - 1})" for i in range(1, 4_000))
        + " SELECT id FROM c3999"
    ),
}


def cpu(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--whole", action="store_true", help="also time check with long lists parsed item by item")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    spec = load_policy_spec(["shop-analyst"], ROOT)
    policy = compile_policy(dataclasses.replace(spec, max_sql_bytes=10_000_000))
    contenders: dict[str, Callable[[str], object]] = {
        "sqlglot.parse": lambda sql: sqlglot.parse(sql, read="postgres"),
        "check": lambda sql: checker.check(sql, policy),
    }
    if args.whole:
        contenders["check, whole text"] = lambda sql: checker._run(checker.Context(sql, policy, None, long_lists=False))
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, float]] = {}
    for name, sql in STATEMENTS.items():
        assert checker.check(sql, policy).allowed
        times: dict[str, list[float]] = {c: [] for c in contenders}
        for run in range(args.runs):
            order = list(contenders)
            for contender in order[run % len(order):] + order[: run % len(order)]:
                times[contender].append(cpu(lambda c=contender, s=sql: contenders[c](s)))  # type: ignore[misc]
        results[name] = {c: statistics.median(t) for c, t in times.items()}
    load = (load_before + os.getloadavg()[0]) / 2
    if args.json:
        print(json.dumps({"load": load, "results": results}, indent=2))
        return 0
    for name, medians in results.items():
        parse = medians["sqlglot.parse"]
        shown = ", ".join(f"{c} {t:.2f} s ({t / parse:.2f}x)" for c, t in medians.items() if c != "sqlglot.parse")
        print(f"{name} ({len(STATEMENTS[name]):,} bytes): sqlglot.parse {parse:.2f} s; {shown}")
    print(f"load average {load:.1f}; CPU seconds, medians of {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
