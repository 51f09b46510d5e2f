"""Can the database enforce each row filter as row-level security for the role?

A policy's `USING` expression runs with the privileges of whoever reads the table, so a filter
calling a function the role may not EXECUTE makes every read of the table fail; one naming a
missing column makes `CREATE POLICY` fail and, since the generated SQL is one transaction,
nothing would be applied. Each filter is therefore compiled by PostgreSQL itself, exactly as
`CREATE POLICY` will (same search_path): as a temporary view `SELECT 1 FROM t WHERE (filter)`
inside a transaction that is rolled back. Its rewrite rule's dependencies (`pg_depend`) name
every function and operator the expression calls, and `has_function_privilege` (or, for a role
that does not exist yet, PUBLIC's EXECUTE) says whether the role may run them.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from pgmcp.db.session import quote_ident, search_path_value
from pgmcp.grants.access import Access, rule_name

PROBE = "pgmcp_filter_probe"

FUNCTIONS_CALLED = f"""
SELECT DISTINCT p.oid::regprocedure::text AS signature,
       CASE WHEN $1::text IS NULL
            THEN EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                         WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
            ELSE has_function_privilege($1, p.oid, 'EXECUTE') END AS executable
FROM pg_rewrite r
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
JOIN pg_proc p ON (d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid)
               OR (d.refclassid = 'pg_operator'::regclass
                   AND p.oid = (SELECT o.oprcode FROM pg_operator o WHERE o.oid = d.refobjid))
WHERE r.ev_class = 'pg_temp.{PROBE}'::regclass
ORDER BY 1
"""


async def filter_problems(
    conn: Any, accesses: list[Access], role: str | None, search_path: tuple[str, ...]
) -> tuple[dict[str, str], list[str]]:
    """(problems by relation name, notes): a problem names the rule and what PostgreSQL said;
    a note says a filter could not be checked here (it is then generated as written)."""
    problems: dict[str, str] = {}
    notes: list[str] = []
    filtered = [a for a in accesses if a.row_filter is not None and a.grant != "none"]
    if not filtered:
        return problems, notes
    await conn.execute("BEGIN READ WRITE")
    try:
        await conn.execute(f"SET LOCAL search_path = {search_path_value(search_path)}")
        for access in filtered:
            rf = access.row_filter
            assert rf is not None
            rule = rule_name(rf.source, f"row_filters.{rf.table}")
            table = f"{quote_ident(access.relation.schema)}.{quote_ident(access.relation.name)}"
            await conn.execute("SAVEPOINT pgmcp_probe")
            try:
                await conn.execute(f"CREATE TEMP VIEW {PROBE} AS SELECT 1 AS one FROM {table} WHERE ({rf.condition})")
                rows = await conn.fetch(FUNCTIONS_CALLED, role)
            except asyncpg.InsufficientPrivilegeError as exc:
                notes.append(f"row filter {rule} could not be checked with this connection ({exc}); "
                             "check it with --admin-dsn")
                await conn.execute("ROLLBACK TO SAVEPOINT pgmcp_probe")
                continue
            except asyncpg.PostgresError as exc:
                problems[access.name] = f"row filter {rule} is refused by PostgreSQL: {exc}"
                await conn.execute("ROLLBACK TO SAVEPOINT pgmcp_probe")
                continue
            await conn.execute("ROLLBACK TO SAVEPOINT pgmcp_probe")
            denied = [r["signature"] for r in rows if not r["executable"]]
            if denied:
                who = f"role {role}" if role else "PUBLIC (the role does not exist yet)"
                problems[access.name] = (f"row filter {rule} calls {', '.join(denied)}, which {who} may not "
                                         "execute: every read of the table would fail")
    finally:
        await conn.execute("ROLLBACK")
    return problems, notes
