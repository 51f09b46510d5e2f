"""Is the role pgmcp connects as too powerful? Checked once per database at startup.

A read-only transaction and a policy check are not enough on their own if the role can read
server files, run programs, signal other backends or bypass row-level security. Both the
login role (session_user) and the role after `SET ROLE` (current_user) are checked: SQL that
slipped past the checker could undo `SET ROLE` (`set_config('role', 'none', false)`), so the
login role's powers count too. Membership in a superuser role counts as well, because
`SET ROLE` to it is possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNSAFE_MEMBERSHIPS = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
)

_QUERY = """
SELECT r.rolname, r.rolname = session_user AS is_login, r.rolsuper, r.rolbypassrls,
       ARRAY(SELECT g FROM unnest($1::text[]) AS g
             WHERE to_regrole(g) IS NOT NULL AND pg_has_role(r.oid, to_regrole(g), 'MEMBER')) AS grants,
       ARRAY(SELECT s.rolname FROM pg_catalog.pg_roles AS s
             WHERE s.rolsuper AND s.oid <> r.oid AND pg_has_role(r.oid, s.oid, 'MEMBER')) AS supers
FROM pg_catalog.pg_roles AS r
WHERE r.rolname IN (session_user, current_user)
ORDER BY 2 DESC
"""


@dataclass(frozen=True)
class RoleReport:
    """The roles a database connection acts as, and what is unsafe about them."""

    login_role: str
    current_role: str
    warnings: tuple[str, ...] = ()

    @property
    def unsafe(self) -> bool:
        return bool(self.warnings)


def _describe(name: str, is_login: bool) -> str:
    return f"login role '{name}'" if is_login else f"role '{name}' (SET ROLE)"


async def check_role(conn: Any) -> RoleReport:
    """Inspect the roles of an open connection (after any SET ROLE) and list what is unsafe."""
    rows = await conn.fetch(_QUERY, list(UNSAFE_MEMBERSHIPS))
    warnings: list[str] = []
    login = current = ""
    for row in rows:
        who = _describe(row["rolname"], row["is_login"])
        if row["is_login"]:
            login = row["rolname"]
        if not row["is_login"] or len(rows) == 1:
            current = row["rolname"]
        if row["rolsuper"]:
            # A superuser passes every privilege check; listing its memberships adds nothing.
            warnings.append(f"{who} is a superuser")
            continue
        if row["rolbypassrls"]:
            warnings.append(f"{who} has BYPASSRLS (row-level security does not apply to it)")
        if row["supers"]:
            warnings.append(f"{who} is a member of superuser role(s) {', '.join(row['supers'])}")
        for grant in row["grants"]:
            warnings.append(f"{who} is a member of {grant}")
    return RoleReport(login_role=login, current_role=current or login, warnings=tuple(warnings))
