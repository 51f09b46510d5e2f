"""Read the catalogs, decide, probe the row filters and render: `pgmcp policy grants` in one call.

Used by the CLI adapter (`pgmcp.cli.policy_grants`) and by `pgmcp demo`, which applies the
result to its own role.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pgmcp.errors import UsageError
from pgmcp.grants.access import plan_access, rule_name
from pgmcp.grants.catalog import public_builtins, read_catalog
from pgmcp.grants.filters import filter_problems
from pgmcp.grants.generate import GrantsInput, render
from pgmcp.grants.role_sql import DOLLAR, revoked_builtins
from pgmcp.policy.effective import EffectivePolicy


@dataclass(frozen=True)
class Generated:
    sql: str
    problems: tuple[str, ...]  # policy rules the database cannot express, each named
    notes: tuple[str, ...]


async def generate_grants(
    conn: Any, effective: EffectivePolicy, database: str, role: str, *, login: bool = False,
    revoke_public: bool = False,
) -> Generated:
    """The grants SQL for `role` from the catalogs `conn` reads (any role may read them)."""
    if DOLLAR in role:
        raise UsageError(f"role name {role!r} contains {DOLLAR}, which the generated DO blocks use")
    catalog = await read_catalog(conn, database, role)
    if not catalog.role.exists and not login:
        raise UsageError(
            f"role {role!r} does not exist in the server of database {database!r}",
            hint="pass --login to create it (as a LOGIN role without password), or name another with --role",
        )
    accesses = plan_access(catalog.snapshot, effective.policy)
    found, notes = await filter_problems(
        conn, accesses, role if catalog.role.exists else None, effective.policy.search_path
    )
    accesses = [
        dataclasses.replace(a, grant="none", reason=found[a.name], problem=found[a.name], row_filter=None)
        if a.name in found else a
        for a in accesses
    ]
    builtins = revoked_builtins(await public_builtins(conn)) if revoke_public else None
    present = {a.name for a in accesses}
    for rf in effective.policy.spec.row_filters:
        if rf.table not in present:
            notes.append(f"row filter {rule_name(rf.source, 'row_filters.' + rf.table)}: "
                         f"no relation {rf.table} in database {database}")
    sql = render(GrantsInput(role, effective, catalog, accesses, login, builtins))
    return Generated(sql, tuple(a.problem for a in accesses if a.problem), tuple(notes))
