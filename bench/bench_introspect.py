"""Introspection time and catalog query count on a 2,000-table x 15-column database.

Builds the database in a throwaway cluster of its own (primary keys, a foreign key and an
index per table, a view for every tenth table, comments), then introspects it several times
and reports the median. Target from issue 3: under 2 seconds here. Every serial column owns a
sequence, so the snapshot holds about 4,000 relations. It also times what the privilege audit
adds when `serve` connects to a database (every relation, the privilege facts, the policy's
decision per relation), and the generation of `pgmcp policy grants` from the same catalogs.

    .venv/bin/python bench/bench_introspect.py [--tables 2000] [--columns 15] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from pgmcp.demo.tempserver import TemporaryPostgres
from pgmcp.grants.access import plan_access
from pgmcp.grants.audit import audit
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.schema.introspect import introspect


def build_sql(tables: int, columns: int) -> str:
    """One script creating `tables` tables of `columns` columns across 4 schemas."""
    out = [f"CREATE SCHEMA s{k};" for k in range(4)]
    for i in range(tables):
        schema = f"s{i % 4}"
        cols = ["id serial PRIMARY KEY"]
        if i:
            cols.append(f"parent_id integer REFERENCES s{(i - 1) % 4}.t{i - 1}(id)")
        cols += [f"c{j} {('text', 'integer', 'numeric(12,2)', 'timestamptz')[j % 4]}"
                 for j in range(columns - len(cols))]
        out.append(f"CREATE TABLE {schema}.t{i} ({', '.join(cols)});")
        out.append(f"CREATE INDEX ON {schema}.t{i} (c0);")
        out.append(f"COMMENT ON TABLE {schema}.t{i} IS 'table number {i}';")
        if i % 10 == 0:
            out.append(f"CREATE VIEW {schema}.v{i} AS SELECT id, c0 FROM {schema}.t{i};")
    return "\n".join(out)


async def measure(dsn: str, runs: int) -> tuple[list[float], int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            snapshot = await introspect(conn, "bench")
            times.append(time.perf_counter() - start)
    finally:
        await conn.close()
    columns = sum(len(r.columns) for r in snapshot.relations)
    return times, snapshot.catalog_queries, len(snapshot.relations), columns


async def measure_audit(dsn: str, runs: int) -> None:
    """The privilege audit as `serve` runs it at connect, as a plain reader of every table,
    under a policy denying a schema and a column and filtering one table."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as folder:
        path = Path(folder) / "p.yaml"
        path.write_text('name: b\ntables:\n  "s0.*": allow\n  "s1.*": allow\n  "s2.*": allow\n'
                        'columns:\n  deny: ["*.*.c3"]\nrow_filters:\n  s0.t0: "c1 > 0"\n')
        policy = compile_policy(load_policy_spec([str(path)], Path(folder)))
    conn = await asyncpg.connect(dsn)
    try:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            findings = await audit(conn, "bench", policy, "pgmcp policy grants")
            times.append(time.perf_counter() - start)
        snapshot = await introspect(conn, "bench", scope="all")
    finally:
        await conn.close()
    start = time.perf_counter()
    decisions = len(plan_access(snapshot, policy))
    plan = time.perf_counter() - start
    print(f"privilege audit over {runs} runs: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms ({len(findings)} findings); "
          f"access decisions for {decisions} relations: {plan * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--columns", type=int, default=15)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with TemporaryPostgres() as pg:
        start = time.perf_counter()
        pg.run_sql("CREATE DATABASE bench")
        pg.run_sql(build_sql(args.tables, args.columns), "bench")
        pg.run_sql("ANALYZE", "bench")
        built = time.perf_counter() - start
        times, queries, relations, columns = asyncio.run(measure(pg.dsn("bench"), args.runs))
        pg.run_sql("CREATE ROLE bench_reader LOGIN;" + "".join(
            f"GRANT USAGE ON SCHEMA s{k} TO bench_reader; GRANT SELECT ON ALL TABLES IN SCHEMA s{k} TO bench_reader;"
            for k in range(4)), "bench")
        print("audit (as a plain reader of every table):")
        asyncio.run(measure_audit(pg.dsn("bench", user="bench_reader"), args.runs))
    print(f"built {args.tables} tables x {args.columns} columns in {built:.1f} s")
    print(f"snapshot: {relations} relations, {columns} columns")
    print(f"catalog queries per introspection: {queries}")
    print(f"introspection over {args.runs} runs: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
