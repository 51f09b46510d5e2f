"""A configured database's effective policy: one builder for the server and every ops command.

The policy documents a database names (merged with everything they extend) are only part of
what judges its SQL. The config adds overrides: `databases.<name>.search_path` replaces the
policy's search path (the server pins every connection to it, so the checker must resolve
unqualified names along exactly that path), and the limits (`limits.max_rows`,
`databases.<name>.statement_timeout`, else `limits.statement_timeout`) bound the policy's own
row cap and statement timeout: where both set one, the smaller wins. `serve`, `check-sql`,
`check-config`, `explain-policy`, `policy test` and `policy grants` all build the policy here,
so a statement is judged the same way by the CLI and by the server.

It lives in `pgmcp.policy` rather than `pgmcp.config`: its output is a `CompiledPolicy`, and
`pgmcp.config` stays a leaf of plain values that imports nothing of the policy engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgmcp.config.model import Config, DatabaseConfig, LimitsConfig
from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.spec import PolicySpec


@dataclass(frozen=True)
class EffectiveLimits:
    """The session limits one database's reads run under (seconds; memory as PostgreSQL text)."""

    max_rows: int
    statement_timeout: float
    lock_timeout: float
    idle_in_transaction_timeout: float
    work_mem: str | None = None
    temp_file_limit: str | None = None


@dataclass(frozen=True)
class EffectivePolicy:
    """A database's compiled policy (config overrides applied) and its session limits."""

    database: str | None
    policy: CompiledPolicy
    limits: EffectiveLimits
    overrides: tuple[str, ...] = ()  # which config settings changed the policy, for display

    @property
    def search_path(self) -> tuple[str, ...]:
        return self.policy.search_path


def effective_policy(
    config: Config, db: DatabaseConfig, refs: Sequence[str] | None = None, *, extra: Sequence[str] = ()
) -> EffectivePolicy:
    """The effective policy of configured database `db`.

    `extra` policies (an access entry's, for one principal) are merged after the database's
    own. `refs` replaces the database's own policy list (`pgmcp policy test` judges the
    documents it is given, under the database's overrides); they are resolved from the working
    directory, while the config's own `policies:` are resolved from the config file's folder.
    """
    if refs is None:
        base_dir = config.path.parent if config.path else Path.cwd()
        spec = load_policy_spec((*db.policies, *extra), base_dir)
    else:
        spec = load_policy_spec(list(refs), Path.cwd())
    return with_overrides(spec, config, db)


def standalone_policy(refs: Sequence[str]) -> EffectivePolicy:
    """The policy of `--policy` refs alone (no config, no overrides); none means the baseline."""
    spec = load_policy_spec(list(refs), Path.cwd())
    limits = LimitsConfig()
    return EffectivePolicy(None, compile_policy(spec), _limits(limits, spec, limits.statement_timeout))


def with_overrides(spec: PolicySpec, config: Config, db: DatabaseConfig) -> EffectivePolicy:
    """`spec` with `db`'s config overrides applied, compiled."""
    changes: dict[str, object] = {}
    overrides: list[str] = []
    if db.search_path:
        changes["search_path"] = tuple(db.search_path)
        overrides.append(f"search_path from databases.{db.name}.search_path")
    configured_timeout = db.statement_timeout or config.limits.statement_timeout
    timeout_ms = round(configured_timeout * 1000)
    if spec.statement_timeout_ms is None or timeout_ms < spec.statement_timeout_ms:
        changes["statement_timeout_ms"] = timeout_ms
        key = f"databases.{db.name}.statement_timeout" if db.statement_timeout else "limits.statement_timeout"
        overrides.append(f"statement_timeout from {key}")
    if spec.max_rows is not None and config.limits.max_rows < spec.max_rows:
        changes["max_rows"] = config.limits.max_rows
        overrides.append("max_rows from limits.max_rows")
    effective = dataclasses.replace(spec, **changes) if changes else spec  # type: ignore[arg-type]
    return EffectivePolicy(
        db.name, compile_policy(effective), _limits(config.limits, effective, configured_timeout), tuple(overrides)
    )


def effective_policies(config: Config) -> dict[str, EffectivePolicy]:
    """Every configured database's effective policy, by name."""
    return {db.name: effective_policy(config, db) for db in config.databases}


def _limits(limits: LimitsConfig, spec: PolicySpec, configured_timeout: float) -> EffectiveLimits:
    timeout = configured_timeout
    if spec.statement_timeout_ms is not None:
        timeout = min(timeout, spec.statement_timeout_ms / 1000)
    max_rows = min(limits.max_rows, spec.max_rows) if spec.max_rows else limits.max_rows
    return EffectiveLimits(
        max_rows=max_rows,
        statement_timeout=timeout,
        lock_timeout=limits.lock_timeout,
        idle_in_transaction_timeout=limits.idle_in_transaction_timeout,
        work_mem=limits.work_mem,
        temp_file_limit=limits.temp_file_limit,
    )
