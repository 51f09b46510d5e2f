"""The soak benchmark's small version (bench/soak.py, 1,000 calls, 8 clients over streamable
HTTP, every kind of outcome): its goals hold. Timings are reported by the benchmark, never
asserted here."""

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


async def test_soak_goals_hold_for_a_thousand_calls(pg_server: TestServer) -> None:
    pg_server.start()
    soak = load_soak()
    report = await soak.soak(1000, 8, pg_server.admin_dsn)
    assert report.unexpected == {}, report.unexpected
    assert sum(report.outcomes.values()) == 1000
    assert set(report.outcomes) == {"ok", "policy_denied", "query_timeout", "query_failed"}
    assert report.idle_in_transaction_end == 0
    assert report.connections_end <= 2 * soak.POOL_MAX
    assert report.rss_growth < 0.10, (report.rss_after_warmup_kb, report.rss_end_kb)
    assert all(report.goals.values()), report.goals
