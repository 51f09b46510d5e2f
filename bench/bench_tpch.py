"""`pgmcp check-sql` with a live schema against a bare `sqlglot.parse`, on TPC-H's 22 queries.

Issue 10's performance requirement: on real analytic SQL, `pgmcp check-sql` reading the live
schema costs at most 3x a bare `sqlglot.parse` of the same files, process start included.

Sets up a throwaway PostgreSQL (pgmcp's `TemporaryPostgres`) with the TPC-H schema
(`bench/tpch/schema.sql`), writes each of the 22 queries (`bench/tpch/queries.sql`) into its
own file, repeated `--repeat` times so that the work outweighs the process start, and then,
`--runs` times, interleaved, times as separate processes:

- `pgmcp check-sql --config FILE --database tpch FILES` (connects, introspects the schema,
  judges every statement under the database's policy, prints the report);
- `python -c "sqlglot.parse(...)"` over the same files (imports sqlglot, parses each file).

Before timing, pgmcp's modules are compiled to bytecode (`compileall`), as `pip install` does
for an installed pgmcp and did for sqlglot: in an editable checkout run with
PYTHONDONTWRITEBYTECODE=1 (this machine's environment), every check-sql process would otherwise
compile pgmcp's ~70 imported modules from source (~0.15 s of CPU) while the bare-parse process
loads sqlglot's precompiled files, a cost no installed pgmcp pays. `--no-compile` skips it.

Prints the median CPU time (user + system, of the process itself: the shared machine's load
stretches wall times unevenly) and wall time of each, and the ratios, for all 22 queries and for the join-heavy
ones (Q2, Q5, Q7, Q8, Q9, Q21: five to eight relations each), under the shipped `permissive`
policy (no rewrite) and the `baseline` policy (the row cap: every query is rewritten, its
text generated and checked again). Exits 1 when a `permissive` CPU ratio passes `--max-ratio` (3).

    .venv/bin/python bench/bench_tpch.py [--repeat 20] [--runs 5] [--max-ratio 3] [--no-compile] [--json]
"""

from __future__ import annotations

import argparse
import compileall
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pgmcp as pgmcp_package
from pgmcp.demo.tempserver import TemporaryPostgres

ROOT = Path(__file__).resolve().parent.parent
TPCH = ROOT / "bench" / "tpch"
JOIN_HEAVY = (2, 5, 7, 8, 9, 21)
PARSE = "import sys, sqlglot\nfor f in sys.argv[1:]:\n    sqlglot.parse(open(f).read(), read='postgres')\n"


def queries() -> dict[int, str]:
    text = (TPCH / "queries.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- Q(\d\d)\n", text, flags=re.M)
    return {int(parts[i]): parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


def write_files(folder: Path, repeat: int) -> dict[int, Path]:
    out = {}
    for number, sql in queries().items():
        path = folder / f"q{number:02d}.sql"
        path.write_text(";\n\n".join([sql] * repeat) + ";\n", encoding="utf-8")
        out[number] = path
    return out


def measure(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process: user + system) of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):  # 1: check-sql found refusals (none expected)
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if proc.returncode == 1:
        raise RuntimeError(f"check-sql refused a TPC-H query: {proc.stdout[-2000:]}")
    return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="copies of each query per file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-ratio", type=float, default=3.0)
    parser.add_argument("--no-compile", action="store_true", help="do not compile pgmcp's bytecode first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.no_compile:
        compileall.compile_dir(Path(pgmcp_package.__file__).parent, quiet=1)
    pgmcp = str(Path(sys.executable).parent / "pgmcp")
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with TemporaryPostgres() as server, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server.run_sql("CREATE DATABASE tpch")
        server.run_sql((TPCH / "schema.sql").read_text(encoding="utf-8"), dbname="tpch")
        files = write_files(folder, args.repeat)
        for policy in ("permissive", "baseline"):
            (folder / f"{policy}.yaml").write_text(json.dumps({
                "databases": {"tpch": {"dsn": server.dsn("tpch"), "policies": [policy]}},
            }), encoding="utf-8")
        sets = {"all 22": sorted(files), "join-heavy": list(JOIN_HEAVY)}
        for label, numbers in sets.items():
            paths = [str(files[n]) for n in numbers]
            contenders = {
                "sqlglot.parse": [sys.executable, "-c", PARSE, *paths],
                "check-sql permissive": [pgmcp, "check-sql", "--config", "permissive.yaml", "--database", "tpch",
                                         "--format", "json", *paths],
                "check-sql baseline": [pgmcp, "check-sql", "--config", "baseline.yaml", "--database", "tpch",
                                       "--format", "json", *paths],
            }
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
            for run in range(args.runs):
                names = list(contenders)
                for name in names[run % len(names):] + names[: run % len(names)]:  # rotate the order
                    times[name].append(measure(contenders[name], folder))
            results[label] = {
                name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
                for name, t in times.items()
            }
    failed = False
    lines = []
    for label, medians in results.items():
        base_wall, base_cpu = medians["sqlglot.parse"]
        statements = args.repeat * len(sets[label])
        for name in ("check-sql permissive", "check-sql baseline"):
            wall, cpu = medians[name]
            if name.endswith("permissive") and cpu / base_cpu > args.max_ratio:
                failed = True
            lines.append(f"{label} ({statements} statements): {name} CPU {cpu:.2f} s vs sqlglot.parse "
                         f"{base_cpu:.2f} s: {cpu / base_cpu:.2f}x (wall {wall:.2f} s vs {base_wall:.2f} s: "
                         f"{wall / base_wall:.2f}x)")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
