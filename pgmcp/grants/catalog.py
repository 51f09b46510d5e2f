"""What `pgmcp policy grants` and the privilege audit read from the catalogs about one role.

`read_catalog` takes the whole schema (every relation and column of the user schemas, readable
or not: `introspect(scope="all")`) and, in three more queries whatever the database's size,
the privilege facts of a role: who owns each relation, what PUBLIC and the role's direct groups
may read there, which columns the role may read, its row-level security state and policies
(`pg_policy`, with their comments), the schemas' PUBLIC privileges, and the role's attributes,
memberships and per-database settings (`pg_db_role_setting`). The privilege functions are
PostgreSQL's own (`has_column_privilege`, `pg_has_role`: src/backend/utils/adt/acl.c), so group
membership, PUBLIC and predefined roles such as `pg_read_all_data` count exactly as they do
when the role reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgmcp.db.privileges import UNSAFE_MEMBERSHIPS
from pgmcp.errors import DatabaseError, PermissionDenied
from pgmcp.schema.introspect import introspect
from pgmcp.schema.snapshot import SchemaSnapshot

# Predefined roles whose members read (or write) every table, whatever the grants say.
BROAD_ROLES = ("pg_read_all_data", "pg_write_all_data", *UNSAFE_MEMBERSHIPS)

_USER_SCHEMA = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
_COLUMNS_OF = (
    "SELECT att.attname FROM pg_attribute att WHERE att.attrelid = c.oid AND att.attnum > 0 "
    "AND NOT att.attisdropped AND {test} ORDER BY att.attnum"
)

# A column group g reads through its own grants (or those of roles it inherits from), not PUBLIC's.
_GROUP_READS = (
    "(EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' "
    "ELSE 'r' END)::\"char\", c.relowner))) a WHERE a.grantee <> 0 AND a.privilege_type = 'SELECT' "
    "AND pg_has_role(g.oid, a.grantee, 'USAGE')) OR EXISTS (SELECT 1 FROM aclexplode(att.attacl) a "
    "WHERE a.grantee <> 0 AND a.privilege_type = 'SELECT' AND pg_has_role(g.oid, a.grantee, 'USAGE')))"
)

# $1: the role's name, NULL when it does not exist yet (then only PUBLIC's privileges count).
RELATION_FACTS = f"""
SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) AS owner,
       coalesce(pg_has_role($1, c.relowner, 'MEMBER'), false) AS role_owns,
       c.relrowsecurity, c.relforcerowsecurity,
       ARRAY(SELECT a.privilege_type FROM aclexplode(coalesce(c.relacl,
               acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
             WHERE a.grantee = 0 ORDER BY 1) AS public_privileges,
       ARRAY({_COLUMNS_OF.format(test="EXISTS (SELECT 1 FROM aclexplode(att.attacl) a "
                                "WHERE a.grantee = 0 AND a.privilege_type = 'SELECT')")}) AS public_columns,
       coalesce(has_any_column_privilege($1, c.oid, 'SELECT'), false) AS role_reads,
       ARRAY({_COLUMNS_OF.format(test="coalesce(has_column_privilege($1, c.oid, att.attnum, 'SELECT'), false)")})
         AS role_columns,
       (SELECT coalesce(json_object_agg(g.rolname, ARRAY({_COLUMNS_OF.format(test=_GROUP_READS)})), '{{}}')
        FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
        WHERE m.member = to_regrole($1)) AS group_columns,
       (SELECT coalesce(json_agg(json_build_object(
                 'name', p.polname, 'permissive', p.polpermissive, 'command', p.polcmd,
                 'roles', ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
                                FROM unnest(p.polroles) r),
                 'applies', 0 = ANY (p.polroles) OR coalesce(
                     (SELECT bool_or(pg_has_role($1, r, 'USAGE')) FROM unnest(p.polroles) r WHERE r <> 0), false),
                 'comment', obj_description(p.oid, 'pg_policy')) ORDER BY p.polname), '[]')
        FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S') AND {_USER_SCHEMA}
ORDER BY n.nspname, c.relname
"""

SCHEMA_FACTS = f"""
SELECT n.nspname,
       ARRAY(SELECT a.privilege_type FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
             WHERE a.grantee = 0 ORDER BY 1) AS public_privileges
FROM pg_namespace n WHERE {_USER_SCHEMA} ORDER BY 1
"""

# Default privileges (ALTER DEFAULT PRIVILEGES) that give the role rights on tables and
# sequences created later, whatever the policy says about them.
DEFAULT_PRIVILEGES = """
SELECT DISTINCT pg_get_userbyid(d.defaclrole) AS owner, n.nspname AS schema, d.defaclobjtype::text AS objtype
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE d.defaclobjtype IN ('r', 'S') AND a.grantee = to_regrole($1)
ORDER BY 1, 2, 3
"""

ROLE_FACTS = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcanlogin,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1) AS member_of,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid AND (g.rolsuper OR g.rolbypassrls OR EXISTS (
                 SELECT 1 FROM unnest($2::text[]) b
                 WHERE to_regrole(b) IS NOT NULL AND pg_has_role(g.oid, to_regrole(b), 'MEMBER')))
             ORDER BY 1) AS broad_groups,
       (SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE s.setrole = r.oid AND d.datname = current_database()) AS in_database,
       (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0) AS everywhere,
       (SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE s.setrole = 0 AND d.datname = current_database()) AS database_wide
FROM pg_roles r WHERE r.rolname = $1
"""


@dataclass(frozen=True)
class RlsPolicy:
    name: str
    permissive: bool
    command: str  # r (SELECT), a, w, d, * (ALL)
    roles: tuple[str, ...]
    applies: bool  # to the role (directly, through a group, or to PUBLIC)
    comment: str | None


@dataclass(frozen=True)
class RelationFacts:
    owner: str
    role_owns: bool
    rls: bool
    force_rls: bool
    public_privileges: tuple[str, ...]
    public_columns: tuple[str, ...]
    role_reads: bool
    role_columns: tuple[str, ...]
    group_columns: dict[str, tuple[str, ...]]  # direct group -> columns it reads by its own grants
    policies: tuple[RlsPolicy, ...]


@dataclass(frozen=True)
class RoleFacts:
    name: str
    exists: bool
    superuser: bool = False
    bypassrls: bool = False
    can_login: bool = False
    member_of: tuple[str, ...] = ()
    broad_groups: tuple[str, ...] = ()  # direct groups that are superuser, BYPASSRLS or broad
    settings: dict[str, str] | None = None  # what applies at login here: role+db, role, db


@dataclass(frozen=True)
class Catalog:
    database: str  # current_database()
    snapshot: SchemaSnapshot  # every relation and column (scope "all")
    relations: dict[tuple[str, str], RelationFacts]
    schema_public: dict[str, tuple[str, ...]]  # schema -> PUBLIC's privileges on it
    role: RoleFacts
    server_version: int
    # (owner, schema or None for every schema, "r" tables or "S" sequences) granting to the role
    default_privileges: tuple[tuple[str, str | None, str], ...] = ()


async def read_catalog(conn: Any, database: str, role: str) -> Catalog:
    """The schema and `role`'s privilege facts, from `conn` (any role may read these catalogs)."""
    snapshot = await introspect(conn, database, scope="all")
    try:
        role_row = await conn.fetchrow(ROLE_FACTS, role, list(BROAD_ROLES))
        known = role if role_row is not None else None
        rel_rows = await conn.fetch(RELATION_FACTS, known)
        schema_rows = await conn.fetch(SCHEMA_FACTS)
        default_rows = await conn.fetch(DEFAULT_PRIVILEGES, known)
        dbname = await conn.fetchval("SELECT current_database()")
        version = int(await conn.fetchval("SHOW server_version_num"))
    except asyncpg.InsufficientPrivilegeError as exc:
        raise PermissionDenied(f"cannot read the privileges in {database!r}: {exc}", sqlstate=exc.sqlstate) from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"reading the privileges in {database!r} failed: {exc}", sqlstate=exc.sqlstate) from exc
    return Catalog(
        database=dbname, snapshot=snapshot,
        relations={(r["nspname"], r["relname"]): _relation(r) for r in rel_rows},
        schema_public={r["nspname"]: tuple(r["public_privileges"]) for r in schema_rows},
        role=_role(role, role_row), server_version=version,
        default_privileges=tuple((r["owner"], r["schema"], r["objtype"]) for r in default_rows),
    )


def _relation(r: Any) -> RelationFacts:
    groups = json.loads(r["group_columns"]) if isinstance(r["group_columns"], str) else r["group_columns"]
    policies = json.loads(r["policies"]) if isinstance(r["policies"], str) else r["policies"]
    return RelationFacts(
        owner=r["owner"], role_owns=r["role_owns"], rls=r["relrowsecurity"], force_rls=r["relforcerowsecurity"],
        public_privileges=tuple(r["public_privileges"]), public_columns=tuple(r["public_columns"]),
        role_reads=r["role_reads"], role_columns=tuple(r["role_columns"]),
        group_columns={g: tuple(cols or ()) for g, cols in (groups or {}).items()},
        policies=tuple(
            RlsPolicy(p["name"], p["permissive"], p["command"], tuple(p["roles"] or ()), bool(p["applies"]),
                      p["comment"])
            for p in policies or ()
        ),
    )


def _role(name: str, row: Any) -> RoleFacts:
    if row is None:
        return RoleFacts(name, exists=False)
    settings: dict[str, str] = {}
    # Lowest precedence first: database-wide, then the role everywhere, then role in database.
    for key in ("database_wide", "everywhere", "in_database"):
        for item in row[key] or ():
            setting, _, value = item.partition("=")
            settings[setting] = value
    return RoleFacts(
        name, True, row["rolsuper"], row["rolbypassrls"], row["rolcanlogin"],
        tuple(row["member_of"]), tuple(row["broad_groups"]), settings,
    )


PUBLIC_BUILTINS = """
SELECT p.proname, p.oid::regprocedure::text AS signature
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pg_catalog'
  AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
ORDER BY 2
"""


async def public_builtins(conn: Any) -> list[tuple[str, str]]:
    """(name, signature) of every pg_catalog function PUBLIC may execute."""
    async with conn.transaction(readonly=True):
        await conn.execute("SET LOCAL search_path = pg_catalog")  # signatures print unqualified
        rows = await conn.fetch(PUBLIC_BUILTINS)
    return [(r["proname"], r["signature"]) for r in rows]
