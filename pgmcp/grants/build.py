"""Read the catalogs, decide, probe the row filters and render: `pgmcp policy grants` in one call.

Used by the CLI adapter (`pgmcp.cli.policy_grants`) and by `pgmcp demo`, which applies the
result to its own role.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgmcp.errors import UsageError
from pgmcp.grants.access import Access, plan_access, rule_name
from pgmcp.grants.catalog import Catalog, public_builtins, read_catalog
from pgmcp.grants.filters import filter_problems
from pgmcp.grants.generate import GrantsInput, render
from pgmcp.grants.role_sql import DOLLAR, revoked_builtins
from pgmcp.policy.effective import EffectivePolicy


@dataclass(frozen=True)
class Generated:
    sql: str
    problems: tuple[str, ...]  # policy rules the database cannot express, each named
    notes: tuple[str, ...]


# How to get a role the grants can bind: the fix named by every refusal below.
OWN_ROLE = ("grant to a least-privilege role of its own: --role pgmcp_ro --login (the SQL creates it), "
            "then let pgmcp log in as pgmcp_ro")
SHOWN_OWNED = 5  # relations named in the refusal of an owner


async def generate_grants(
    conn: Any, effective: EffectivePolicy, database: str, role: str, *, login: bool = False,
    revoke_public: bool = False, base_dir: Path | None = None,
) -> Generated:
    """The grants SQL for `role` from the catalogs `conn` reads (any role may read them).

    Refused (UsageError) for a role the SQL could not bind: a superuser, or the owner of a
    relation it covers. `base_dir` (the config's folder) shortens the policy files named in
    the header.
    """
    if DOLLAR in role:
        raise UsageError(f"role name {role!r} contains {DOLLAR}, which the generated DO blocks use")
    catalog = await read_catalog(conn, database, role)
    if not catalog.role.exists and not login:
        raise UsageError(
            f"role {role!r} does not exist in the server of database {database!r}",
            hint="pass --login to create it (as a LOGIN role without password), or name another with --role",
        )
    accesses = plan_access(catalog.snapshot, effective.policy)
    refuse_unbindable(catalog, accesses)
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
    sql = render(GrantsInput(role, effective, catalog, accesses, login, builtins, base_dir))
    return Generated(sql, tuple(a.problem for a in accesses if a.problem), tuple(notes))


def refuse_unbindable(catalog: Catalog, accesses: list[Access]) -> None:
    """Refuse a role that privileges do not bind, rather than print REVOKEs that change nothing.

    A superuser passes every privilege check and row-level security (src/backend/catalog/aclchk.c
    `pg_class_aclmask`: superusers get every privilege; rowsecurity.c `check_enable_rls`). An
    owner (or a member of the owner: `pg_has_role(..., 'MEMBER')`) may grant itself anything
    back, is not subject to row-level security unless forced, and `REVOKE ALL` from it would
    take away the application's own rights on its tables.
    """
    role = catalog.role
    if role.superuser:
        raise UsageError(
            f"role {role.name!r} is a superuser: privileges and row-level security do not apply to it, "
            "so the REVOKEs and row filters generated for it would change nothing", hint=OWN_ROLE,
        )
    owned = [a.name for a in accesses
             if (facts := catalog.relations.get((a.relation.schema, a.relation.name))) and facts.role_owns]
    if owned:
        names = ", ".join(owned[:SHOWN_OWNED]) + (f" and {len(owned) - SHOWN_OWNED} more"
                                                   if len(owned) > SHOWN_OWNED else "")
        raise UsageError(
            f"role {role.name!r} owns {names} (or may SET ROLE to the owner): an owner can grant itself "
            "anything back and row-level security does not apply to it, so the REVOKEs generated for it "
            "would not bind it (and would take the application's own rights on its tables)", hint=OWN_ROLE,
        )
