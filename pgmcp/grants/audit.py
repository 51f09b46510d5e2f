"""The privilege audit: can the connected role read more than its database's policy allows?

pgmcp's checker stands between the model and the data; the audit asks whether the database
would stand there too if the checker had a hole. It compares the connected role's effective
privileges (PostgreSQL's own privilege functions, `pgmcp.grants.catalog`) with what the policy
allows (`pgmcp.grants.access`) and reports, each naming the object and the fix:
- a superuser or BYPASSRLS role (login role or SET ROLE target);
- ownership of a relation the policy denies, restricts or filters (an owner can grant itself
  anything, and row-level security does not apply to owners unless forced);
- denied relations and denied columns the role can read (directly, through PUBLIC or a group);
- row-filtered tables where no row-level security restricts the role (or where the generated
  restriction is for another filter than the policy's current one);
- `default_transaction_read_only` not on for the role.
`check-config --connect` prints the findings, `serve` logs them at startup, and
`databases.<name>.require_grants: true` refuses the database while there are any.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgmcp.db.privileges import check_role
from pgmcp.grants.access import Access, plan_access
from pgmcp.grants.catalog import Catalog, RelationFacts, read_catalog
from pgmcp.grants.generate import filter_comment, policy_name
from pgmcp.policy.compiler import CompiledPolicy

_ON = ("on", "true", "yes", "1")
# Where a server-level value can come from when no client or session changed it.
_SERVER_SOURCES = ("default", "configuration file", "command line", "environment variable", "override")


@dataclass(frozen=True)
class Finding:
    kind: str  # role, owner, readable_relation, readable_columns, row_security, read_write
    object: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message}; fix: {self.fix}"


async def audit(conn: Any, database: str, policy: CompiledPolicy, grants_command: str) -> list[Finding]:
    """Every finding for the role of `conn` (after SET ROLE) under `policy`."""
    fix = f"apply the SQL printed by `{grants_command}` as an admin"
    report = await check_role(conn)
    # Without --role the grants would go to this very role: advise a role of its own.
    own_role = (f"connect as a least-privilege role of its own (apply the SQL printed by "
                f"`{grants_command} --role pgmcp_ro --login` as an admin, then log in as pgmcp_ro)")
    findings = [Finding("role", f"role {report.current_role}", w, own_role)
                for w in report.warnings if "superuser" in w or "BYPASSRLS" in w]
    if any("superuser" in f.message for f in findings):
        return findings  # every privilege check passes for it: nothing else can be judged
    bypass = bool(findings)
    catalog = await read_catalog(conn, database, report.current_role)
    for access in plan_access(catalog.snapshot, policy):
        facts = catalog.relations.get((access.relation.schema, access.relation.name))
        if facts is not None:
            findings += _relation_findings(access, facts, report.current_role, fix, bypass)
    findings += await _read_only_findings(conn, catalog, fix)
    return findings


def _relation_findings(a: Access, facts: RelationFacts, role: str, fix: str, bypass: bool) -> list[Finding]:
    out: list[Finding] = []
    restricted = a.grant != "all" or a.row_filter is not None
    if facts.role_owns and restricted:
        out.append(Finding("owner", a.name, f"{role} owns it (or may SET ROLE to its owner {facts.owner}): an owner "
                           "can grant itself anything and row-level security does not apply to it",
                           f"ALTER TABLE {a.name} OWNER TO another role, then {fix}"))
    if a.grant == "none" and facts.role_reads:
        out.append(Finding("readable_relation", a.name, f"{role} can read it, but the policy does not allow it "
                           f"({a.reason})", fix))
    if a.grant == "columns":
        leaked = [c for c in facts.role_columns if c in a.denied_columns]
        if leaked:
            out.append(Finding("readable_columns", f"{a.name} ({', '.join(leaked)})",
                               f"{role} can read column(s) the policy denies", fix))
    if a.row_filter is not None and a.grant != "none" and facts.role_reads and not bypass:
        problem = _row_security_problem(a, facts, role)
        if problem:
            out.append(Finding("row_security", a.name, problem, fix))
    return out


def _row_security_problem(a: Access, facts: RelationFacts, role: str) -> str | None:
    assert a.row_filter is not None
    condition = a.row_filter.condition
    if not facts.rls:
        return f"the policy filters its rows ({condition}) but row-level security is off: {role} reads every row"
    restrictions = [p for p in facts.policies if p.applies and not p.permissive and p.command in ("r", "*")]
    if not restrictions:
        return f"the policy filters its rows ({condition}) but no row-level security policy restricts {role}"
    ours = next((p for p in restrictions if p.name == policy_name("pgmcp_filter", role)), None)
    if ours is not None and ours.comment != filter_comment(condition):
        was = (ours.comment or "").removeprefix("pgmcp row filter: ")
        return f"its row-level security enforces an older filter ({was}); the policy now says {condition}"
    return None


async def _read_only_findings(conn: Any, catalog: Catalog, fix: str) -> list[Finding]:
    role = catalog.role
    value = (role.settings or {}).get("default_transaction_read_only")
    if value is None:
        row = await conn.fetchrow(
            "SELECT setting, source FROM pg_catalog.pg_settings WHERE name = 'default_transaction_read_only'"
        )
        value = row["setting"] if row is not None and row["source"] in _SERVER_SOURCES else None
    if value is not None and value.lower() in _ON:
        return []
    return [Finding("read_write", f"role {role.name}",
                    "default_transaction_read_only is not on for it in this database: a session that gets past "
                    "pgmcp's own settings could write", fix)]
