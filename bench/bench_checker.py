"""Policy checker throughput on PostgreSQL's regression statements, against bare parsers.

Over the same statements of `../shared/corpora/pg_regress.jsonl` in the same process and run:
`sqlglot.parse(sql, read="postgres")` (what the checker parses with), `pglast.parse_sql(sql)`
(PostgreSQL's own parser, in C) and `pgmcp.policy.checker.check(sql, policy)` with the
shipped permissive policy (every stage runs: split, parse, statement, relation, function
and column rules, rewrites). Statements a parser rejects count with the time spent
rejecting them. Reports statements per second and the checker's time as a ratio of each
parser's, for all statements and for the plain SELECTs (the checker's real workload).

    .venv/bin/python bench/bench_checker.py [--corpus PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pglast
import sqlglot
import sqlglot.parser

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "pg_regress.jsonl"


def timed(fn: Callable[[str], object], statements: list[str]) -> float:
    """Seconds to run `fn` over every statement (errors count, they are part of the work)."""
    start = time.perf_counter()
    for sql in statements:
        try:
            fn(sql)
        except Exception:  # a rejection is a result here
            continue
    return time.perf_counter() - start


def measure(statements: list[str]) -> dict[str, float]:
    policy = compile_policy(load_policy_spec(["permissive"], ROOT))

    def sqlglot_parse(sql: str) -> object:
        return sqlglot.parse(sql, read="postgres")

    def checker(sql: str) -> object:
        return check(sql, policy)

    # Warm up caches and lazy imports on a slice, then time each over the whole list.
    for fn in (sqlglot_parse, pglast.parse_sql, checker):
        timed(fn, statements[:200])
    seconds = {
        "sqlglot": timed(sqlglot_parse, statements),
        "pglast": timed(pglast.parse_sql, statements),
        "checker": timed(checker, statements),
    }
    n = len(statements)
    return {
        "statements": n,
        **{f"{name}_per_s": n / secs for name, secs in seconds.items()},
        "checker_vs_sqlglot": seconds["checker"] / seconds["sqlglot"],
        "checker_vs_pglast": seconds["checker"] / seconds["pglast"],
    }


def main() -> None:
    # sqlglot warns on every statement it falls back on; writing those would be timed too.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N statements")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.corpus.read_text().splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    results = {
        "all": measure([r["sql"] for r in rows]),
        "select": measure([r["sql"] for r in rows if r["label"] == "select"]),
        "sqlglotc": sqlglot.parser.__file__.endswith(".so"),
    }
    if args.json:
        print(json.dumps(results))
        return
    print(f"corpus {args.corpus.name}; sqlglotc {'on' if results['sqlglotc'] else 'off'}")
    for subset in ("all", "select"):
        r = results[subset]
        assert isinstance(r, dict)
        print(f"{subset} ({r['statements']:.0f} statements): sqlglot.parse {r['sqlglot_per_s']:.0f}/s, "
              f"pglast.parse_sql {r['pglast_per_s']:.0f}/s, check {r['checker_per_s']:.0f}/s; "
              f"check = {r['checker_vs_sqlglot']:.2f}x sqlglot.parse, {r['checker_vs_pglast']:.1f}x pglast")


if __name__ == "__main__":
    main()
