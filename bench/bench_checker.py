"""Policy checker throughput on PostgreSQL's regression statements, against bare parsers.

Issue 2's "Fast" requirement: judging the statements of `../shared/corpora/pg_regress.jsonl`
takes no more than 1.5 times what `sqlglot.parse` alone takes on the same statements in the
same environment. Over the same statements, in the same process, this times:

- `sqlglot.parse(sql, read="postgres")`, what the checker parses with (the reference);
- `check(sql, permissive)`: the shipped permissive policy (all relations, every
  non-dangerous function, SELECT only), the policy of the requirement and the corpus test;
- `check(sql, baseline)`: the shipped baseline (adds the row cap, so every allowed SELECT is
  rewritten, regenerated and checked again);
- `pglast.parse_sql(sql)`: PostgreSQL's own parser, in C, for scale;
- the `pgmcp check-sql` code path, in-process (`--check-sql`): the corpus written out as one
  .sql file per regression file (statements joined with ";\n\n"), each file read, split by
  `pgmcp.policy.splitter` and judged by `check_sql.judge` with the permissive policy, against
  `sqlglot.parse` and `pglast.parse_sql` of the statements the split gives; it also counts
  the statements that do not split back identically (BEGIN ATOMIC routine bodies, which the
  corpus cut at each `;`, are one statement for psql; a statement ending in a `--` comment
  would swallow the `;` that follows it).

The machine is shared, so the timings are interleaved: the statements are cut into blocks and
each block is run by every contender in turn (the order rotating per block), for `--rounds`
rounds; a contender's time is the sum over all blocks and rounds, and a load spike hits them
all alike. Statements a parser rejects count with the time spent rejecting them. Prints both
times and the ratios, for all statements and for the plain SELECTs, and exits 1 when the
permissive checker takes more than `--max-ratio` (1.5) times `sqlglot.parse` over all statements.

    .venv/bin/python bench/bench_checker.py [--corpus PATH] [--limit N] [--rounds N] [--max-ratio X] [--json]
        [--check-sql]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pglast
import sqlglot
import sqlglot.parser

from pgmcp.cli.check_sql import judge, read_sources
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "pg_regress.jsonl"
BLOCK = 500  # statements per interleaved block


def timed(fn: Callable[[str], object], statements: list[str]) -> float:
    """Seconds to run `fn` over every statement (errors count, they are part of the work)."""
    start = time.perf_counter()
    for sql in statements:
        try:
            fn(sql)
        except Exception:  # a rejection is a result here
            continue
    return time.perf_counter() - start


def contenders() -> dict[str, Callable[[str], object]]:
    permissive = compile_policy(load_policy_spec(["permissive"], ROOT))
    baseline = compile_policy(load_policy_spec(["baseline"], ROOT))

    def sqlglot_parse(sql: str) -> object:
        return sqlglot.parse(sql, read="postgres")

    def checker(sql: str) -> object:
        return check(sql, permissive)

    def checker_baseline(sql: str) -> object:
        return check(sql, baseline)

    return {
        "sqlglot": sqlglot_parse,
        "checker": checker,
        "checker_baseline": checker_baseline,
        "pglast": pglast.parse_sql,
    }


def measure(statements: list[str], rounds: int) -> dict[str, float]:
    fns = contenders()
    # Warm up caches and lazy imports on a slice first.
    for fn in fns.values():
        timed(fn, statements[:200])
    names = list(fns)
    seconds = dict.fromkeys(names, 0.0)
    per_round: list[float] = []
    for r in range(rounds):
        round_secs = dict.fromkeys(names, 0.0)
        for b, at in enumerate(range(0, len(statements), BLOCK)):
            block = statements[at : at + BLOCK]
            shift = (r + b) % len(names)
            for name in names[shift:] + names[:shift]:
                round_secs[name] += timed(fns[name], block)
        per_round.append(round_secs["checker"] / round_secs["sqlglot"])
        for name in names:
            seconds[name] += round_secs[name]
    n = len(statements) * rounds
    return {
        "statements": len(statements),
        "rounds": rounds,
        **{f"{name}_s": secs / rounds for name, secs in seconds.items()},
        **{f"{name}_per_s": n / secs for name, secs in seconds.items()},
        "checker_vs_sqlglot": seconds["checker"] / seconds["sqlglot"],
        "checker_vs_sqlglot_min": min(per_round),
        "checker_vs_sqlglot_max": max(per_round),
        "checker_baseline_vs_sqlglot": seconds["checker_baseline"] / seconds["sqlglot"],
        "checker_vs_pglast": seconds["checker"] / seconds["pglast"],
    }


def check_sql_path(rows: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Time the check-sql path over the corpus written out as .sql files (see the docstring)."""
    permissive = compile_policy(load_policy_spec(["permissive"], ROOT))
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_file[row["file"]].append(row)
    with tempfile.TemporaryDirectory() as tmp:
        paths, statements, mismatched = [], [], 0
        for name, file_rows in sorted(by_file.items()):
            file_rows.sort(key=lambda r: r["index"])
            path = Path(tmp) / name
            path.write_text(";\n\n".join(r["sql"] for r in file_rows), encoding="utf-8")
            paths.append(str(path))
            split = [r.sql for r in judge(read_sources([str(path)]), permissive).results]
            statements.append(split)
            expected = [r["sql"].strip() for r in file_rows]
            mismatched += sum((Counter(expected) - Counter(split)).values())

        def parse_all(fn: Callable[[str], object]) -> Callable[[int], object]:
            return lambda i: timed(fn, statements[i])

        fns: dict[str, Callable[[int], object]] = {
            "sqlglot": parse_all(lambda sql: sqlglot.parse(sql, read="postgres")),
            "check_sql": lambda i: judge(read_sources([paths[i]]), permissive),
            "pglast": parse_all(pglast.parse_sql),
        }
        names = list(fns)
        seconds = dict.fromkeys(names, 0.0)
        for r in range(rounds):
            for i in range(len(paths)):  # interleaved per file, the order rotating
                shift = (r + i) % len(names)
                for name in names[shift:] + names[:shift]:
                    start = time.perf_counter()
                    fns[name](i)
                    seconds[name] += time.perf_counter() - start
    return {
        "files": len(paths),
        "statements": sum(len(s) for s in statements),
        "corpus_statements": len(rows),
        "not_split_back": mismatched,
        **{f"{name}_s": secs / rounds for name, secs in seconds.items()},
        "check_sql_vs_sqlglot": seconds["check_sql"] / seconds["sqlglot"],
        "check_sql_vs_pglast": seconds["check_sql"] / seconds["pglast"],
    }


def main() -> None:
    # sqlglot warns on every statement it falls back on; writing those would be timed too.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N statements")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the statements")
    parser.add_argument("--max-ratio", type=float, default=1.5,
                        help="exit 1 above this checker/sqlglot.parse ratio (all statements); 0: never")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--check-sql", action="store_true",
                        help="also time the check-sql path over the corpus written out as .sql files")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.corpus.read_text().splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    results: dict[str, Any] = {
        "all": measure([r["sql"] for r in rows], args.rounds),
        "select": measure([r["sql"] for r in rows if r["label"] == "select"], args.rounds),
        "sqlglotc": sqlglot.parser.__file__.endswith(".so"),
        "max_ratio": args.max_ratio,
    }
    if args.check_sql:
        results["check_sql"] = check_sql_path(rows, args.rounds)
    ratio = results["all"]["checker_vs_sqlglot"]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"corpus {args.corpus.name}; sqlglotc {'on' if results['sqlglotc'] else 'off'}; "
              f"{args.rounds} interleaved rounds, mean per round")
        for subset in ("all", "select"):
            r = results[subset]
            assert isinstance(r, dict)
            print(f"{subset} ({r['statements']:.0f} statements): sqlglot.parse {r['sqlglot_s']:.2f} s, "
                  f"check(permissive) {r['checker_s']:.2f} s, check(baseline) {r['checker_baseline_s']:.2f} s, "
                  f"pglast.parse_sql {r['pglast_s']:.2f} s")
            print(f"  check(permissive) = {r['checker_vs_sqlglot']:.2f}x sqlglot.parse "
                  f"(rounds {r['checker_vs_sqlglot_min']:.2f}-{r['checker_vs_sqlglot_max']:.2f}), "
                  f"{r['checker_vs_pglast']:.2f}x pglast; check(baseline) = "
                  f"{r['checker_baseline_vs_sqlglot']:.2f}x sqlglot.parse")
        if args.check_sql:
            c = results["check_sql"]
            assert isinstance(c, dict)
            print(f"check-sql path ({c['files']} files, {c['statements']} statements split from "
                  f"{c['corpus_statements']}; {c['not_split_back']} not split back identically):")
            print(f"  {'contender':<34}{'seconds':>9}{'ratio':>9}")
            for label, key in (("sqlglot.parse of each statement", "sqlglot_s"),
                               ("check-sql (read, split, judge)", "check_sql_s"),
                               ("pglast.parse_sql of each statement", "pglast_s")):
                print(f"  {label:<34}{c[key]:>9.2f}{c[key] / c['sqlglot_s']:>8.2f}x")
    if args.check_sql:
        c = results["check_sql"]
        assert isinstance(c, dict)
        ratio = max(ratio, c["check_sql_vs_sqlglot"])
    if args.max_ratio and ratio > args.max_ratio:
        print(f"FAIL: the checker takes {ratio:.2f}x sqlglot.parse, above {args.max_ratio}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
