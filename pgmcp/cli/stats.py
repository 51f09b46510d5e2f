"""`pgmcp stats`: the metrics of running pgmcp servers, as a short table.

With `--url`, reads `/metrics` of a server on the HTTP transport; otherwise reads the
snapshot files that stdio servers keep (see `pgmcp.observe.stats_file`). `--format json` prints the
raw data.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from pgmcp.observe.stats_file import read_live_snapshots

Sample = tuple[str, dict[str, str], float]
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="base URL of a server on the HTTP transport (reads URL/metrics)")
    parser.add_argument("--dir", type=Path, help="stats folder of stdio servers (default: $PGMCP_STATS_DIR, else "
                        "$XDG_STATE_HOME/pgmcp/stats, else ~/.local/state/pgmcp/stats)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def parse_prometheus(text: str) -> list[Sample]:
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            found = _LABEL.findall(match[2] or "")
            labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in found}
            samples.append((match[1], labels, float(match[3])))
    return samples


def snapshot_samples(snapshot: dict[str, Any]) -> list[Sample]:
    samples: list[Sample] = []
    for name, metric in snapshot.items():
        for s in metric.get("samples", []):
            if "value" in s:
                samples.append((name, s["labels"], float(s["value"])))
            else:
                samples.append((f"{name}_count", s["labels"], float(s["count"])))
                samples.append((f"{name}_sum", s["labels"], float(s["sum"])))
    return samples


def summary(samples: list[Sample]) -> list[str]:
    """A few readable lines: calls by tool and outcome, refusals by rule, LLM use, cache age."""
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for name, labels, value in samples:
        by_name[name].append((labels, value))
    lines = []
    for labels, value in sorted(by_name["pgmcp_requests_total"], key=lambda s: sorted(s[0].items())):
        lines.append(f"  calls     {labels.get('tool', '?'):16} {labels.get('database', '') or '-':12} "
                     f"{labels.get('status', '?'):10} {value:g}")
    for labels, value in by_name["pgmcp_policy_refusals_total"]:
        lines.append(f"  refusals  {labels.get('database', '?'):16} {labels.get('rule', '?'):12} {value:g}")
    for labels, value in by_name["pgmcp_llm_calls_total"]:
        lines.append(f"  llm calls {labels.get('provider', '?'):16} {labels.get('operation', '?'):12} "
                     f"{labels.get('status', '?'):10} {value:g}")
    for labels, value in by_name["pgmcp_llm_tokens_total"]:
        lines.append(
            f"  tokens    {labels.get('provider', '?'):16} {labels.get('direction', '?'):12} {value:g}"
        )
    for labels, value in by_name["pgmcp_schema_cache_age_seconds"]:
        lines.append(f"  cache age {labels.get('database', '?'):16} {value:.0f}s")
    return lines or ["  (no requests yet)"]


def run(args: argparse.Namespace) -> int:
    if args.url:
        url = args.url.rstrip("/") + "/metrics"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            print(f"pgmcp stats: cannot read {url}: {exc}", file=sys.stderr)
            return 2
        samples = parse_prometheus(text)
        if args.format == "json":
            print(json.dumps([{"name": n, "labels": lab, "value": v} for n, lab, v in samples], indent=2))
        else:
            print(f"pgmcp server at {args.url}")
            print("\n".join(summary(samples)))
        return 0
    snapshots = read_live_snapshots(args.dir)
    if args.format == "json":
        print(json.dumps(snapshots, indent=2, default=str))
        return 0
    if not snapshots:
        print("no running pgmcp server found (stdio servers write their stats while they run; "
              "for the HTTP transport use --url http://HOST:PORT)")
        return 0
    for snap in snapshots:
        print(f"pgmcp pid {snap.get('pid')} config {snap.get('config') or '-'}")
        print("\n".join(summary(snapshot_samples(snap.get("metrics", {})))))
    return 0
