"""`pgmcp policy grants`: the effective policy compiled into privileges and row-level security.

The output is one transaction of commented, idempotent SQL that leaves ROLE able to read
exactly what `pgmcp.grants.access` decided, whatever it could read before:
- `REVOKE ALL` then `GRANT SELECT` on every relation (column lists where columns are denied),
  so grants left from earlier runs or by hand never survive; `USAGE` on the schemas it needs;
- `REVOKE ... FROM PUBLIC` where PUBLIC lets every role read what ROLE must not, and of the
  memberships through which ROLE reads it;
- each row filter as a RESTRICTIVE `FOR SELECT TO role` policy. Enabling row-level security
  hides every row from non-owners without a policy (src/backend/rewrite/rowsecurity.c), so a
  PERMISSIVE `FOR ALL TO PUBLIC USING (true) WITH CHECK (true)` policy keeps every other role's
  reads and writes as they were; where the table already had row-level security, its own
  policies keep deciding for the others and ROLE gets a permissive SELECT policy of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pgmcp.db.session import quote_ident, search_path_value, sql_literal
from pgmcp.documents.resources import policies_dir
from pgmcp.grants.access import Access, rule_name
from pgmcp.grants.catalog import Catalog, RelationFacts
from pgmcp.grants.role_sql import (
    attributes_sql,
    create_role_sql,
    memberships_sql,
    revoke_public_sql,
    settings_sql,
)
from pgmcp.policy.effective import EffectivePolicy

KEEP_ACCESS = "pgmcp_keep_access"


@dataclass(frozen=True)
class GrantsInput:
    role: str
    effective: EffectivePolicy
    catalog: Catalog
    accesses: list[Access]
    login: bool = False
    revoked_builtins: list[str] | None = None  # --revoke-public: the signatures
    base_dir: Path | None = None  # policy files below it are named relative to it


def policy_name(prefix: str, role: str) -> str:
    """`pgmcp_filter_<role>`, shortened with a hash when it would pass NAMEDATALEN (63 bytes)."""
    name = f"{prefix}_{role}"
    if len(name.encode()) <= 63:
        return name
    return f"{prefix}_{hashlib.sha256(role.encode()).hexdigest()[:16]}"


def render(g: GrantsInput) -> str:
    policy = g.effective.policy
    files = ", ".join(_shown(f, g.base_dir) for f in policy.spec.files) or "(built-in)"
    lines = [
        f"-- pgmcp policy grants: role {g.role} in database {g.catalog.database}",
        f"-- policy {policy.name} ({files}); search_path {', '.join(policy.search_path)}",
        "-- Idempotent, one transaction: apply as a superuser or the tables' owner, e.g.",
        "--   psql -v ON_ERROR_STOP=1 -f grants.sql 'postgresql://admin@host/db'",
        "BEGIN;",
        "-- Row filters are parsed with the policy's search_path, as pgmcp resolves names.",
        f"SET LOCAL search_path = {search_path_value(policy.search_path)};",
        "SET LOCAL lock_timeout = '10s';  -- ENABLE ROW LEVEL SECURITY waits for an exclusive lock",
        "",
    ]
    if g.login:
        lines += create_role_sql(g.role, g.catalog.database)
    lines += attributes_sql(g.catalog.role)
    lines += memberships_sql(g.role, _group_leaks(g), g.catalog.role.broad_groups)
    lines += settings_sql(g.role, g.catalog.database, g.effective.limits)
    lines += _schemas(g)
    lines += _default_privileges(g)
    lines += _relations(g)
    lines += _row_security(g)
    if g.revoked_builtins is not None:
        lines += revoke_public_sql(g.revoked_builtins)
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def _shown(file: str, base_dir: Path | None) -> str:
    """A policy file as the config names it (relative to its folder), `<shipped>/x.yaml` for a
    shipped one, else as loaded."""
    path = Path(file)
    if path.parent == policies_dir().resolve():
        return f"<shipped>/{path.name}"
    if base_dir is not None and path.is_relative_to(base_dir.resolve()):
        return str(path.relative_to(base_dir.resolve()))
    return file


def _facts(g: GrantsInput, a: Access) -> RelationFacts | None:
    return g.catalog.relations.get((a.relation.schema, a.relation.name))


def _target(a: Access) -> str:
    word = "SEQUENCE" if a.relation.kind == "sequence" else "TABLE"
    return f"{word} {quote_ident(a.relation.schema)}.{quote_ident(a.relation.name)}"


def _schemas(g: GrantsInput) -> list[str]:
    needed = {a.relation.schema for a in g.accesses if a.grant != "none"}
    role = quote_ident(g.role)
    out = [f"-- Schemas: USAGE where {g.role} reads something, nothing elsewhere; never CREATE."]
    for schema in sorted(g.catalog.schema_public):
        ident = quote_ident(schema)
        if schema in needed:
            out += [f"GRANT USAGE ON SCHEMA {ident} TO {role};", f"REVOKE CREATE ON SCHEMA {ident} FROM {role};"]
        else:
            out.append(f"REVOKE ALL ON SCHEMA {ident} FROM {role};")
        if "CREATE" in g.catalog.schema_public[schema]:
            out.append(f"-- note: PUBLIC may CREATE in schema {schema} (every role may add objects there); "
                       f"REVOKE CREATE ON SCHEMA {ident} FROM PUBLIC unless an application needs it.")
    return [*out, ""]


def _default_privileges(g: GrantsInput) -> list[str]:
    """Revoke default privileges that would give the role tables created later, unjudged."""
    if not g.catalog.default_privileges:
        return []
    out = [f"-- Default privileges give {g.role} rights on tables created later, whatever the policy says",
           "-- about them. Revoked: run this command again after schema changes instead."]
    for owner, schema, objtype in g.catalog.default_privileges:
        where = f" IN SCHEMA {quote_ident(schema)}" if schema else ""
        what = "SEQUENCES" if objtype == "S" else "TABLES"
        out.append(f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_ident(owner)}{where} REVOKE ALL ON {what} "
                   f"FROM {quote_ident(g.role)};")
    return [*out, ""]


def _relations(g: GrantsInput) -> list[str]:
    role = quote_ident(g.role)
    out = [f"-- Relations: {g.role} reads exactly what the policy allows (REVOKE ALL first, so earlier",
           "-- grants do not survive)."]
    left_out = [a for a in g.accesses if a.left_out_view]
    for a in g.accesses:
        facts = _facts(g, a)
        kind = a.relation.kind.replace("_", " ")
        if a.grant == "all":
            filtered = " (rows filtered below)" if a.row_filter else ""
            out += [f"-- {kind} {a.name}: allowed{filtered}",
                    f"REVOKE ALL ON {_target(a)} FROM {role};", f"GRANT SELECT ON {_target(a)} TO {role};"]
        elif a.grant == "columns":
            cols = ", ".join(quote_ident(c) for c in a.columns)
            out += [f"-- {kind} {a.name}: only the allowed columns; {a.reason}",
                    f"REVOKE ALL ON {_target(a)} FROM {role};", f"GRANT SELECT ({cols}) ON {_target(a)} TO {role};"]
        else:
            label = "NOT GRANTED (the policy cannot be expressed)" if a.problem else "not granted"
            out += [f"-- {kind} {a.name}: {label}: {a.reason}", f"REVOKE ALL ON {_target(a)} FROM {role};"]
        out += _public(a, facts)  # (an owner of a relation is refused before: build.refuse_unbindable)
    if left_out:
        out += ["", "-- Views left out: a view reads with its owner's rights, so granting it would hand over what",
                "-- it reads whatever the policy says. Recreate one WITH (security_invoker = on) (PostgreSQL 15+)",
                "-- to have it read with the reader's own rights, and run this command again."]
        out += [f"--   {a.name}: {a.reason}" for a in left_out]
    return [*out, ""]


def _public(a: Access, facts: RelationFacts | None) -> list[str]:
    """REVOKE from PUBLIC what it lets every role read and this role must not."""
    if facts is None or a.grant == "all":
        return []
    out: list[str] = []
    why = (f"-- PUBLIC may read {a.name}: every role, this one included. This REVOKE takes it from every\n"
           "-- role that relied on PUBLIC; grant it back by name to the roles that need it.")
    if "SELECT" in facts.public_privileges:
        out += [why, f"REVOKE SELECT ON {_target(a)} FROM PUBLIC;"]
        why = ""
    hidden = a.denied_columns if a.grant == "columns" else tuple(c.name for c in a.relation.columns)
    public_cols = [c for c in facts.public_columns if c in hidden]
    if public_cols:
        cols = ", ".join(quote_ident(c) for c in public_cols)
        out += [why] if why else []
        out.append(f"REVOKE SELECT ({cols}) ON {_target(a)} FROM PUBLIC;")
    return out


def _group_leaks(g: GrantsInput) -> dict[str, list[str]]:
    """Direct groups of the role that read, by their own grants, what the role must not."""
    leaks: dict[str, list[str]] = {}
    for a in g.accesses:
        facts = _facts(g, a)
        if facts is None or a.grant == "all":
            continue
        hidden = set(a.denied_columns) if a.grant == "columns" else {c.name for c in a.relation.columns}
        for group, cols in facts.group_columns.items():
            seen = [c for c in cols if c in hidden]
            if seen:
                leaks.setdefault(group, []).append(a.name if a.grant == "none" else f"{a.name} ({', '.join(seen)})")
    return leaks


def _row_security(g: GrantsInput) -> list[str]:
    role = quote_ident(g.role)
    filter_name, read_name = policy_name("pgmcp_filter", g.role), policy_name("pgmcp_read", g.role)
    out: list[str] = []
    for a in g.accesses:
        facts = _facts(g, a)
        mine = {p.name for p in facts.policies} if facts else set()
        table = f"{quote_ident(a.relation.schema)}.{quote_ident(a.relation.name)}"
        if a.row_filter is None or a.grant == "none":
            stale = [n for n in (filter_name, read_name) if n in mine]
            if stale:
                out.append(f"-- {a.name} has no row filter for {g.role} any more: drop the policy generated before.")
            out += [f"DROP POLICY IF EXISTS {quote_ident(n)} ON {table};" for n in stale]
            continue
        rf = a.row_filter
        keep = facts is None or not facts.rls or KEEP_ACCESS in mine
        out += [
            f"-- Row filter {rule_name(rf.source, 'row_filters.' + rf.table)}:",
            f"-- {g.role} reads only the rows of {a.name} where {rf.condition}",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;",
        ]
        if keep:
            out += ["-- Every other role reads and writes as before (owners, superusers and BYPASSRLS roles are not",
                    "-- subject to row-level security at all). Note: COPY FROM is refused on a table with row-level",
                    "-- security for roles subject to it; they use INSERT instead.",
                    f"DROP POLICY IF EXISTS {KEEP_ACCESS} ON {table};",
                    f"CREATE POLICY {KEEP_ACCESS} ON {table} AS PERMISSIVE FOR ALL TO PUBLIC",
                    "  USING (true) WITH CHECK (true);"]
        else:
            out += [f"-- {a.name} already had row-level security: its own policies keep deciding for other roles.",
                    f"DROP POLICY IF EXISTS {quote_ident(read_name)} ON {table};",
                    f"CREATE POLICY {quote_ident(read_name)} ON {table} AS PERMISSIVE FOR SELECT TO {role}",
                    "  USING (true);"]
        out += [
            f"DROP POLICY IF EXISTS {quote_ident(filter_name)} ON {table};",
            f"CREATE POLICY {quote_ident(filter_name)} ON {table} AS RESTRICTIVE FOR SELECT TO {role}",
            f"  USING ({rf.condition});",
            f"COMMENT ON POLICY {quote_ident(filter_name)} ON {table} IS {sql_literal(filter_comment(rf.condition))};",
            "",
        ]
    return out


def filter_comment(condition: str) -> str:
    """The comment on a generated filter policy: the audit compares it with the current filter."""
    return f"pgmcp row filter: {condition}"
