"""The files `pgmcp init` writes: `pgmcp.yaml` and `policies/<database>.yaml`, as commented text
(the third, `pgmcp-role.sql`, is `pgmcp.cli.init_role`'s).

Written as text rather than dumped from dicts because the comments are the point: each hidden
column says why it is hidden, each suggested row filter why it is suggested, and the config
says where the password comes from and what role pgmcp logs in as. Secrets are never
written: a password becomes `${NAME_DB_PASSWORD}`, set in pgmcp's environment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlglot.dialects.postgres import Postgres

from pgmcp.schema.sensitive import Finding, sensitive_columns, tenant_columns
from pgmcp.schema.snapshot import RelationInfo, SchemaSnapshot

MAX_TESTS_PER_KIND = 8  # generated deny tests; the rest of the hidden columns are still hidden
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
_KEYWORDS = frozenset(k.lower() for k in Postgres.Tokenizer.KEYWORDS)
_GLOB = re.compile(r"[*?\[]")
_UNWRITABLE = re.compile(r"[\s.\"']")  # pgmcp.policy.conditions: a pattern part has none of these


@dataclass(frozen=True)
class Connection:
    """Where the database is, as the config will say it (never with the password)."""

    dsn: str | None = None  # a postgresql:// URI without its password
    host: str | None = None
    port: int | None = None
    user: str | None = None
    dbname: str | None = None
    sslmode: str | None = None
    password_variable: str | None = None  # the variable holding the role's password


def yaml_str(text: str) -> str:
    """`text` as a YAML scalar (JSON's double-quoted form is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def ident(name: str) -> str:
    """A SQL identifier, quoted only where PostgreSQL needs it (or where it is a keyword)."""
    if _PLAIN.match(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def glob_literal(name: str) -> str:
    """`name` as one part of a policy glob: glob characters bracketed (`[*]`), and the
    characters a pattern part cannot hold (space, dot, quote) matched by `?`, which may also
    match another name of the same shape: for a deny rule, hiding more is the safe side."""
    return _UNWRITABLE.sub("?", _GLOB.sub(lambda m: f"[{m.group()}]", name))


def _writable(name: str) -> bool:
    """Whether `name` can be written exactly in a row-filter table (no globs there)."""
    return not (_GLOB.search(name) or _UNWRITABLE.search(name))


def password_variable(name: str) -> str:
    """The environment variable for a database's password: `hr` -> HR_DB_PASSWORD."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper()) + "_DB_PASSWORD"


def config_text(name: str, conn: Connection, policy_ref: str, role_sql_ref: str, role: str, stamp: str) -> str:
    """The text of `pgmcp.yaml` for one database, reached as `role` (the config's user)."""
    lines = [
        f"# pgmcp configuration, written by `pgmcp init` on {stamp}.",
        "# Secrets are not written here: each ${VARIABLE} below is read from pgmcp's environment.",
        "databases:",
        f"  {name}:",
        f"    description: {yaml_str(f'PostgreSQL database {conn.dbname or name}')}",
    ]
    if conn.dsn:
        lines.append(f"    dsn: {yaml_str(conn.dsn)}")
    else:
        for key in ("host", "port", "user", "dbname", "sslmode"):
            value = getattr(conn, key)
            if value is not None:
                lines.append(f"    {key}: {value if isinstance(value, int) else yaml_str(str(value))}")
    if conn.password_variable:
        variable = conn.password_variable
        lines.append(f"    password: ${{{variable}}}   # {role}'s: export {variable}=... where pgmcp runs")
    lines += [
        f"    # pgmcp logs in as {role}, a read-only role of its own, never as the owner or a superuser:",
        f"    # {role_sql_ref} creates it with exactly the privileges the policy needs (apply it as an",
        "    # admin, see its first lines). pgmcp refuses to serve the database as a superuser, a role",
        "    # with BYPASSRLS or one that may read or write the server's files:",
        "    refuse_unsafe_role: true",
        f"    policies: [{yaml_str(policy_ref)}]",
        "",
    ]
    return "\n".join(lines)


def _schemas(snapshot: SchemaSnapshot) -> list[str]:
    found = sorted(snapshot.schemas())
    return (["public"] if "public" in found else []) + [s for s in found if s != "public"]


def _sql_name(rel: RelationInfo) -> str:
    return f"{ident(rel.schema)}.{ident(rel.name)}"


def policy_text(name: str, snapshot: SchemaSnapshot, source: str, stamp: str) -> str:
    """The text of `policies/<name>.yaml`: allow the schemas found, hide the sensitive-looking
    columns (each with its reason), suggest row filters for tenant-like columns (commented),
    and tests that pin these decisions."""
    schemas = _schemas(snapshot)
    hidden = sensitive_columns(snapshot)
    tenants = tenant_columns(snapshot)
    lines = [
        f"# The policy of database {name}, written by `pgmcp init` on {stamp} from {source}.",
        "# A first draft: review it. Columns were hidden by their names only; anything else that",
        "# must not be read (free-text notes, other personal data) needs a rule too. Then run",
        "# `pgmcp policy test` on this file, and `pgmcp check-config --connect`.",
        f"name: {yaml_str(name)}",
        f"description: {yaml_str(f'Read-only access to {name}, without the columns that look sensitive')}",
        "extends: [baseline]",
        "statements: [select]",
        "",
    ]
    if schemas:
        lines += ["tables:", *(f"  {yaml_str(glob_literal(s) + '.*')}: allow" for s in schemas)]
    else:
        lines.append("tables: {}   # pgmcp's login could read no table of this database")
    lines.append("")
    if hidden:
        width = max(len(yaml_str(_pattern(f.relation, f.column))) for f in hidden)
        lines += ["columns:", "  deny:"]
        lines += [f"    - {yaml_str(_pattern(f.relation, f.column)).ljust(width)}   # {f.reason}" for f in hidden]
    else:
        lines.append("columns: {}   # no column name looked sensitive: check the data anyway")
    lines.append("")
    tenants = [f for f in tenants if _writable(f.relation.schema) and _writable(f.relation.name)]
    if tenants:
        lines += ["# Tenant-like columns: uncomment a filter (and delete the {} line) to show only one",
                  "# tenant's rows of that table.",
                  "row_filters:"]
        for f in tenants:
            condition = yaml_str(f"{ident(f.column)} = 1")
            lines.append(f"  # {yaml_str(f.relation.qualified_name)}: {condition}   # {f.reason}; 1 is a placeholder")
        lines.append("  {}")
    else:
        lines.append("row_filters: {}   # no tenant-like column found")
    lines += [
        "",
        f"search_path: [{', '.join(yaml_str(s) for s in schemas) or yaml_str('public')}]",
        "limits:",
        "  max_rows: 1000",
        "  statement_timeout: 5s",
        "",
        "# `pgmcp policy test` runs these; add the questions your users will ask.",
        "tests:",
        *_tests(snapshot, hidden),
        "",
    ]
    return "\n".join(lines)


def _pattern(rel: RelationInfo, column: str) -> str:
    return ".".join(glob_literal(part) for part in (rel.schema, rel.name, column))


def _tests(snapshot: SchemaSnapshot, hidden: list[Finding]) -> list[str]:
    hidden_keys = {(f.relation.schema, f.relation.name, f.column) for f in hidden}
    out = []
    allowed = 0
    for rel in snapshot.relations:
        visible = [c.name for c in rel.columns if (rel.schema, rel.name, c.name) not in hidden_keys]
        if set(rel.depends_on_columns) & hidden_keys:
            continue  # a view over a hidden column is refused (PGM204) unless allowed by name
        if visible and allowed < MAX_TESTS_PER_KIND:
            sql = f"SELECT {ident(visible[0])} FROM {_sql_name(rel)} LIMIT 5"
            out.append(f"  - {{sql: {yaml_str(sql)}, expect: allow}}")
            allowed += 1
    for f in hidden[:MAX_TESTS_PER_KIND]:
        sql = f"SELECT {ident(f.column)} FROM {_sql_name(f.relation)}"
        # A view's column may be refused as the view's (PGM301) or, with the live schema, as
        # the hidden table column the view reads (PGM204): either refusal is right.
        rules = ", rules: [PGM301]" if f.relation.kind in ("table", "partitioned_table") else ""
        out.append(f"  - {{sql: {yaml_str(sql)}, expect: deny{rules}}}")
    target = next((r for r in snapshot.relations if r.kind == "table"), None)
    if target is not None:
        sql = f"DELETE FROM {_sql_name(target)}"
        out.append(f"  - {{sql: {yaml_str(sql)}, expect: deny, rules: [PGM101]}}")
    out.append(f"  - {{sql: {yaml_str('SELECT pg_read_file(' + chr(39) + '/etc/passwd' + chr(39) + ')')}, "
               "expect: deny, rules: [PGM401]}")
    return out

