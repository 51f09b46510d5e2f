"""The soak benchmark's small version (bench/soak.py: 8 clients over streamable HTTP, every kind
of outcome; here 80 warm-up calls, then 160 measured ones, each client making every kind 4
times): its goals hold. The long run (20,000 calls) is the benchmark's; timings are reported by
the benchmark, never asserted here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import TestServer

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pgmcp_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CALLS, CLIENTS, WARMUP = 160, 8, 80


async def test_soak_goals_hold(pg_server: TestServer) -> None:
    pg_server.start()
    soak = load_soak()
    report = await soak.soak(CALLS, CLIENTS, pg_server.admin_dsn, warmup=WARMUP)
    assert report.unexpected == {}, report.unexpected
    assert sum(report.outcomes.values()) == CALLS
    assert set(report.outcomes) == {"ok", "policy_denied", "query_timeout", "query_failed"}
    assert report.idle_in_transaction_end == 0
    assert report.connections_end <= 2 * soak.POOL_MAX
    assert report.rss_growth < 0.10, (report.rss_after_warmup_kb, report.rss_end_kb)
    assert all(report.goals.values()), report.goals
