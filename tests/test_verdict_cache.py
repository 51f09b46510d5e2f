"""The executor remembers verdicts per (database, policy, snapshot, SQL text) and never serves
one across a change of policy or schema snapshot (pgmcp.db.verdicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgmcp.config.model import DatabaseConfig, LimitsConfig
from pgmcp.db import executor as executor_module
from pgmcp.db.executor import Executor, PolicyCheck
from pgmcp.db.pools import PoolSet
from pgmcp.db.verdicts import VerdictCache
from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.schema.snapshot import ColumnInfo, RelationInfo, SchemaSnapshot

ROOT = Path(__file__).resolve().parent.parent
STAR = "SELECT * FROM users"


def analyst() -> CompiledPolicy:
    """A fresh compiled shop-analyst policy (it denies users.password_hash and users.ssn)."""
    return compile_policy(load_policy_spec(["shop-analyst"], ROOT))


def snapshot(*columns: str) -> SchemaSnapshot:
    users = RelationInfo("public", "users", "table", tuple(ColumnInfo(c, "text") for c in columns))
    return SchemaSnapshot(database="main", relations=(users,))


class Switchable:
    """What the runtime's checker reads: the current policy and snapshot, changed by the test."""

    def __init__(self, policy: CompiledPolicy, snap: SchemaSnapshot) -> None:
        self.policy, self.snap = policy, snap

    def check(self) -> PolicyCheck:
        return PolicyCheck(lambda: (self.policy, None), lambda: self.snap)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every check the executor actually runs."""
    calls: list[str] = []
    real = executor_module.check

    def counting(sql: str, policy: CompiledPolicy, snap: SchemaSnapshot | None) -> Any:
        calls.append(sql)
        return real(sql, policy, snap)

    monkeypatch.setattr(executor_module, "check", counting)
    return calls


def executor(source: Switchable) -> Executor:
    limits = LimitsConfig()
    pools = PoolSet([DatabaseConfig(name="main", dsn="postgresql://nobody@127.0.0.1:9/none")], limits)
    return Executor(pools, {"main": source.check()}, limits)


async def test_a_verdict_is_reused_only_under_the_same_policy_and_snapshot(counted: list[str]) -> None:
    narrow = snapshot("id", "name")
    source = Switchable(analyst(), narrow)
    ex = executor(source)
    first = await ex.check("main", STAR)
    assert first.allowed  # the snapshot knows no protected column behind the star
    assert await ex.check("main", STAR) is first and counted == [STAR]

    source.snap = snapshot("id", "name", "password_hash", "ssn")  # a refresh found the columns
    refused = await ex.check("main", STAR)
    assert not refused.allowed and {v.rule for v in refused.violations} == {"PGM301"}
    assert len(counted) == 2

    source.snap = narrow  # the old snapshot object again: its verdicts were dropped, checked anew
    assert (await ex.check("main", STAR)).allowed and len(counted) == 3

    source.policy = analyst()  # an equal policy, but another object (another principal's, say)
    assert (await ex.check("main", STAR)).allowed and len(counted) == 4
    assert await ex.check("main", "SELECT id FROM users") is not None and len(counted) == 5


async def test_refusals_are_remembered_and_hooks_still_run_every_time(counted: list[str]) -> None:
    seen: list[bool] = []
    follow_ups: list[bool] = []
    source = Switchable(analyst(), snapshot("id", "ssn"))
    limits = LimitsConfig()
    pools = PoolSet([DatabaseConfig(name="main", dsn="postgresql://nobody@127.0.0.1:9/none")], limits)
    check = PolicyCheck(lambda: (source.policy, lambda v: follow_ups.append(v.allowed)), lambda: source.snap)
    ex = Executor(pools, {"main": check}, limits, on_verdict=lambda db, sql, v, ms: seen.append(v.allowed))
    for _ in range(3):
        assert not (await ex.check("main", "SELECT ssn FROM users")).allowed
    assert counted == ["SELECT ssn FROM users"]
    assert seen == [False, False, False] and follow_ups == [False, False, False]


def test_the_cache_is_bounded_per_key_and_in_keys() -> None:
    cache = VerdictCache(keys=2)
    policies = [analyst() for _ in range(3)]
    snap = snapshot("id")
    verdict: Any = object()
    for policy in policies:
        for n in range(300):
            cache.put("main", policy, snap, f"SELECT {n}", verdict)
    assert len(cache) == 2 * 256  # two keys kept, 256 verdicts each
    assert cache.get("main", policies[0], snap, "SELECT 299") is None  # the oldest key went first
    assert cache.get("main", policies[2], snap, "SELECT 299") is verdict
    assert cache.get("main", policies[2], snap, "SELECT 0") is None  # the oldest verdicts went first
    assert cache.get("other", policies[2], snap, "SELECT 299") is None


def test_a_new_snapshot_drops_the_verdicts_kept_under_the_old_ones() -> None:
    """Other principals' entries must not keep an old snapshot (megabytes for a large schema) alive."""
    cache = VerdictCache()
    old, new = snapshot("id"), snapshot("id", "name")
    policies = [analyst() for _ in range(3)]
    verdict: Any = object()
    for policy in policies:
        cache.put("main", policy, old, "SELECT 1", verdict)
    cache.put("other", policies[0], old, "SELECT 1", verdict)  # another database keeps its own
    assert len(cache) == 4
    cache.put("main", policies[0], new, "SELECT 1", verdict)
    assert len(cache) == 2
    assert all(cache.get("main", p, old, "SELECT 1") is None for p in policies)
    assert cache.get("other", policies[0], old, "SELECT 1") is verdict
