"""`pgmcp stats`: the metrics of running pgmcp servers, as a short table.

With `--url`, reads `/metrics` of a server on the HTTP transport; otherwise reads the files
that stdio servers keep (the same text, see `pgmcp.observe.stats_file`). Both are parsed by
prometheus_client's parser. `--format json` prints the samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pgmcp.observe.stats_file import read_live_stats

Sample = tuple[str, dict[str, str], float]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="base URL of a server on the HTTP transport (reads URL/metrics)")
    parser.add_argument("--dir", type=Path, help="stats folder of stdio servers (default: $PGMCP_STATS_DIR, else "
                        "$XDG_STATE_HOME/pgmcp/stats, else ~/.local/state/pgmcp/stats)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def parse_prometheus(text: str) -> list[Sample]:
    """Every sample of an exposition text: (name, labels, value)."""
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _samples_json(samples: list[Sample]) -> list[dict[str, Any]]:
    return [{"name": n, "labels": lab, "value": v} for n, lab, v in samples]


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
            print(json.dumps(_samples_json(samples), indent=2))
        else:
            print(f"pgmcp server at {args.url}")
            print("\n".join(summary(samples)))
        return 0
    servers = read_live_stats(args.dir)
    if args.format == "json":
        print(json.dumps([
            {"pid": s.pid, "config": s.config, "samples": _samples_json(parse_prometheus(s.text))} for s in servers
        ], indent=2))
        return 0
    if not servers:
        print("no running pgmcp server found (stdio servers write their stats while they run; "
              "for the HTTP transport use --url http://HOST:PORT)")
        return 0
    for server in servers:
        print(f"pgmcp pid {server.pid} config {server.config or '-'}")
        print("\n".join(summary(parse_prometheus(server.text))))
    return 0
