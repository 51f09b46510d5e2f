"""Run every benchmark in bench/ and print one markdown table, headed by the machine it ran on.

Each `bench_*.py` runs as its own process, one after another (they would disturb each other
in parallel). The ones listed in BENCHES are summarised from their output by a small adapter;
a benchmark not listed still runs and its last output line is shown, so a new file is never
silently skipped. The whole output is the table; paste it into bench/RESULTS.md.

    .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]

`--quick` runs each with fewer iterations (a smoke test of the suite, not numbers to publish).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlglot.parser

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
Row = tuple[str, str, str]  # benchmark, measure, result


def _checker(out: str) -> list[Row]:
    data = json.loads(out.strip().splitlines()[-1])
    rows = []
    for subset, label in (("all", "all statements"), ("select", "plain SELECTs")):
        r = data[subset]
        rows.append((
            f"checker, pg_regress corpus ({label}, {r['statements']:,})",
            "`check` (permissive; baseline) vs `sqlglot.parse` / `pglast.parse_sql`",
            f"{r['checker_s']:.2f} s ({r['checker_per_s']:,.0f} stmt/s) vs {r['sqlglot_s']:.2f} s / "
            f"{r['pglast_s']:.2f} s: **{r['checker_vs_sqlglot']:.2f}x** sqlglot (limit 1.5 on all statements), "
            f"{r['checker_vs_pglast']:.2f}x pglast; baseline policy {r['checker_baseline_vs_sqlglot']:.2f}x sqlglot",
        ))
    return rows


def _executor(out: str) -> list[Row]:
    rows = []
    for m in re.finditer(r"^(.+?)\s+([\d.]+) ms\s+([\d.]+) ms\s+([\d.]+)x\s*$", out, re.M):
        label, base, ours, ratio = m.groups()
        rows.append((f"executor overhead ({label.strip()})", "`Executor.execute` vs bare asyncpg `fetch`",
                     f"{float(ours):.3f} ms vs {float(base):.3f} ms: **{float(ratio):.1f}x**"))
    return rows


def _introspect(out: str) -> list[Row]:
    rel = re.search(r"snapshot: (\d+) relations, (\d+) columns", out)
    med = re.search(r"median (\d+) ms, min (\d+) ms, max (\d+) ms", out)
    queries = re.search(r"catalog queries per introspection: (\d+)", out)
    if not (rel and med and queries):
        raise ValueError("unrecognised output")
    return [(
        f"schema introspection ({int(rel.group(1)):,} relations, {int(rel.group(2)):,} columns)",
        "one snapshot, median",
        f"**{med.group(1)} ms** (min {med.group(2)}, max {med.group(3)}), {queries.group(1)} catalog queries",
    )]


def _roundtrip(out: str) -> list[Row]:
    r = json.loads(out.strip().splitlines()[-1])
    return [(
        f"MCP `execute_sql` round trip over stdio ({r['calls']:,} calls, `pgmcp demo`)",
        "client-side latency, one-row SELECT",
        f"median **{r['median_ms']:.2f} ms**, p99 **{r['p99_ms']:.2f} ms** (p90 {r['p90_ms']:.2f}, "
        f"max {r['max_ms']:.1f}); {r['calls_per_s']:,.0f} calls/s",
    )]


def _startup(out: str) -> list[Row]:
    r = json.loads(out.strip().splitlines()[-1])
    return [(
        f"`pgmcp serve` startup ({r['runs']} runs)",
        "process start to first answered request",
        f"initialize **{r['initialize_median_ms']:.0f} ms**, first `execute_sql` "
        f"**{r['first_answer_median_ms']:.0f} ms** (median; min {r['first_answer_min_ms']:.0f}, "
        f"max {r['first_answer_max_ms']:.0f})",
    )]


def _peers(out: str) -> list[Row]:
    table = json.loads(out.strip().splitlines()[-1])
    peers = [n for n in table if n not in ("pgmcp", "hello")]
    rows = []
    for key, label, unit in (
        ("startup_ms", "spawn to first answer", "ms"), ("one_row_p50_ms", "1-row call p50", "ms"),
        ("one_row_cpu_ms", "1-row call, server CPU per call", "ms"),
        ("new_statement_p50_ms", "1-row call, a new statement each call, p50", "ms"),
        ("ten_k_validated_ms", "10,000 rows, output schema validated", "ms"),
        ("ten_k_unvalidated_ms", "10,000 rows, not validated", "ms"),
        ("hundred_k_ms", "100,000 rows", "ms"), ("hundred_k_peak_rss_mb", "100,000 rows, peak RSS", "MB"),
    ):
        if key not in table.get("pgmcp", {}):
            continue
        cells = [f"{n} {table[n][key]:.1f} {unit}" for n in ("pgmcp", "hello", *peers) if key in table.get(n, {})]
        best = min((table[n][key] for n in peers if key in table[n]), default=None)
        ratio = f" (**{table['pgmcp'][key] / best:.2f}x** the best peer)" if best else ""
        rows.append((f"side by side: {label}", "pgmcp vs the bare SDK server and the peers", ", ".join(cells) + ratio))
    return rows


def _wire(out: str) -> list[Row]:
    figures = json.loads(out.strip().splitlines()[-1])
    rows = []
    for label, per_server in figures.items():
        cells = [f"{name} {f['server_ms']:.0f} + {f['client_ms']:.0f} ms ({f['bytes'] / 1e6:.1f} MB)"
                 for name, f in per_server.items()]
        rows.append((f"large answer split ({label})", "server (raw reader) + the SDK client's steps on the answer",
                     ", ".join(cells)))
    return rows


def _tpch(out: str) -> list[Row]:
    rows = []
    pattern = (r"^(.+?) \((\d+) statements\): check-sql (\w+) CPU ([\d.]+) s vs sqlglot.parse ([\d.]+) s: "
               r"([\d.]+)x \(wall ([\d.]+) s vs ([\d.]+) s: ([\d.]+)x\)$")
    for m in re.finditer(pattern, out, re.M):
        subset, n, policy, cpu, base, ratio, wall, base_wall, wall_ratio = m.groups()
        rows.append((f"`check-sql` live schema, TPC-H ({subset}, {int(n):,} statements, {policy})",
                     "process CPU (wall) vs `python -c sqlglot.parse`, process start included",
                     f"{cpu} s vs {base} s: **{ratio}x** (wall {wall} s vs {base_wall} s: {wall_ratio}x; limit 3)"))
    if not rows:
        raise ValueError("unrecognised output")
    return rows


@dataclass(frozen=True)
class Bench:
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    summarise: Callable[[str], list[Row]]


BENCHES: dict[str, Bench] = {
    "bench_checker.py": Bench(("--json",), ("--json", "--limit", "2000", "--rounds", "1", "--max-ratio", "0"),
                              _checker),
    "bench_executor.py": Bench((), ("--runs", "5"), _executor),
    "bench_introspect.py": Bench((), ("--tables", "200", "--runs", "2"), _introspect),
    "bench_mcp_roundtrip.py": Bench(("--json",), ("--json", "--calls", "100", "--warmup", "10"), _roundtrip),
    "bench_startup.py": Bench(("--json",), ("--json", "--runs", "2"), _startup),
    "bench_peers.py": Bench(("--json",), ("--json", "--quick"), _peers),
    "bench_tpch.py": Bench((), ("--runs", "1", "--repeat", "2", "--max-ratio", "100"), _tpch),
    "bench_wire.py": Bench(("--json",), ("--json", "--runs", "1"), _wire),
}


def machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pg = subprocess.run(["sh", "-c", "pg_config --version || psql --version"], capture_output=True,
                        text=True, check=False).stdout.strip()
    compiled = sqlglot.parser.__file__.endswith((".so", ".pyd"))
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, nproc {usable}",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- sqlglot {sqlglot.__version__}, sqlglotc **{'on' if compiled else 'off'}**",
        f"- PostgreSQL: {pg.splitlines()[0] if pg else 'unknown'} (throwaway local cluster, fsync off)",
    ]


def run_one(path: Path, bench: Bench | None, quick: bool) -> tuple[list[Row], float]:
    args = (bench.quick_args if quick else bench.args) if bench else ()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    name = path.stem.removeprefix("bench_")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return [(name, "FAILED", f"exit {proc.returncode}: {last}")], elapsed
    if bench is None:
        last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        return [(name, "(no summary adapter in run_all.py)", last)], elapsed
    try:
        return bench.summarise(proc.stdout), elapsed
    except (ValueError, KeyError, IndexError) as exc:
        return [(name, "output not understood", f"{exc}: {proc.stdout.strip()[-200:]}")], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations: check the suite runs")
    parser.add_argument("--only", nargs="*", default=None, help="file names (bench_x.py) or stems (x)")
    args = parser.parse_args()
    paths = sorted(p for p in BENCH_DIR.glob("bench_*.py"))
    if args.only:
        wanted = {n if n.endswith(".py") else f"bench_{n}.py" for n in args.only}
        paths = [p for p in paths if p.name in wanted]
    rows: list[Row] = []
    for path in paths:
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        got, elapsed = run_one(path, BENCHES.get(path.name), args.quick)
        print(f"  done in {elapsed:.0f} s", file=sys.stderr, flush=True)
        rows += got
    print("Machine:\n")
    print("\n".join(machine()))
    if args.quick:
        print("- **--quick run: reduced iterations, not for publishing**")
    print()
    print("| benchmark | measure | result |")
    print("|---|---|---|")
    for bench_name, measure, result in rows:
        print(f"| {bench_name} | {measure} | {result} |")


if __name__ == "__main__":
    main()
