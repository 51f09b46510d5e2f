"""Recent verdicts, so that a statement asked again is not checked again.

Models repeat themselves: the same `SELECT` is run again, a `check_sql` is followed by the
`execute_sql` of the very same text. A check costs 0.3 to 1 ms of the event loop for a short
statement (parse, resolution, rules, the row-cap rewrite and its re-check), most of a one-row
call's own work.

A verdict is a function of three things only: the SQL text, the compiled policy (the
principal's, with its claims bound: `pgmcp.auth.access`) and the schema snapshot (star
expansion, views, inheritance). Policies and snapshots are immutable values, and each change
(a refresh, another principal, other claims) makes a new object. So verdicts are kept per
(database, policy object, snapshot object): a lookup with any other policy or snapshot misses,
and a new snapshot or policy for that key replaces the verdicts kept under it. The entries
hold their policy and snapshot, so an id cannot be reused while they live; when a database's
snapshot changes, the verdicts under its other snapshots are dropped at once (a snapshot of a
large schema is megabytes: other principals' stale entries must not keep old ones alive). Only
statements small enough to be checked on the event loop are kept (`INLINE_CHECK_BYTES`), and
at most `size` per key and `keys` keys.

A cached verdict is the same object the check returned; what runs on every verdict (the audit
hook, a follow-up such as the unbound-claim refusal) still runs on every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cachetools import LRUCache

from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.snapshot import SchemaSnapshot

SIZE = 256  # verdicts per (database, policy, snapshot)
KEYS = 64  # (database, policy) pairs


@dataclass
class _Kept:
    policy: CompiledPolicy
    snapshot: SchemaSnapshot | None
    verdicts: LRUCache[str, Verdict] = field(default_factory=lambda: LRUCache(SIZE))


class VerdictCache:
    """Verdicts by (database, policy, snapshot, SQL text); see the module docstring."""

    def __init__(self, keys: int = KEYS) -> None:
        self._kept: LRUCache[tuple[str, int], _Kept] = LRUCache(keys)
        self._snapshots: dict[str, SchemaSnapshot | None] = {}  # the latest snapshot put, per database

    def get(self, database: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None, sql: str) -> Verdict | None:
        kept = self._kept.get((database, id(policy)))
        if kept is None or kept.policy is not policy or kept.snapshot is not snapshot:
            return None
        return kept.verdicts.get(sql)

    def put(
        self, database: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None, sql: str, verdict: Verdict
    ) -> None:
        if database not in self._snapshots or self._snapshots[database] is not snapshot:
            self._snapshots[database] = snapshot
            for stale in [k for k, v in self._kept.items() if k[0] == database and v.snapshot is not snapshot]:
                del self._kept[stale]
        key = (database, id(policy))
        kept = self._kept.get(key)
        if kept is None or kept.policy is not policy or kept.snapshot is not snapshot:
            kept = _Kept(policy, snapshot)
            self._kept[key] = kept
        kept.verdicts[sql] = verdict

    def __len__(self) -> int:
        return sum(len(k.verdicts) for k in self._kept.values())
