"""Policy rules that match nothing in the live schema are found (a typo protects nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.unmatched import unmatched_rules
from pgmcp.schema.snapshot import ColumnInfo, RelationInfo, SchemaSnapshot

HR = SchemaSnapshot(
    database="hr",
    relations=(
        RelationInfo("hr", "employees", "table", tuple(ColumnInfo(c, "text") for c in ("id", "name", "ssn", "salary"))),
        RelationInfo("hr", "audit_secrets", "table", (ColumnInfo("id", "integer"), ColumnInfo("secret", "text"))),
        RelationInfo("public", "notes", "table", (ColumnInfo("id", "integer"), ColumnInfo("tenant_id", "integer"))),
    ),
)

# (the policy's rules, the patterns reported as matching nothing, a text one of the messages holds)
CASES: list[tuple[str, list[str], str]] = [
    # issue 16's two typos: the table is employees, and audit_secrets
    ('columns:\n  deny: ["hr.employee.ssn"]\n', ["hr.employee.ssn"], 'did you mean "hr.employees.ssn"?'),
    ('tables:\n  "hr.*": allow\n  "hr.audit_secret": deny\n', ["hr.audit_secret"],
     'deny rule "hr.audit_secret" matches no relation in the live schema (did you mean "hr.audit_secrets"?)'),
    ('tables:\n  "sales.*": allow\n', ["sales.*"], 'allow rule "sales.*" matches no relation'),
    ('columns:\n  allow: ["hr.employees.nme"]\n', ["hr.employees.nme"], '"hr.employees.name"'),
    ('row_filters:\n  public.note: "tenant_id = 1"\n', ["public.note"], 'did you mean "public.notes"?'),
    # Globs that match something, exact names that exist, system schemas: nothing to say.
    ('tables:\n  "*.*": allow\n  "hr.audit_*": deny\n  "pg_catalog.pg_authid": deny\n', [], ""),
    ('columns:\n  deny: ["*.*.ssn", "hr.employees.salary", "pg_catalog.pg_authid.rolpassword"]\n', [], ""),
    ('row_filters:\n  public.notes: "tenant_id = 1"\n', [], ""),
    # A glob with nothing to match gets no did-you-mean
    ('columns:\n  deny: ["*.*.iban"]\n', ["*.*.iban"], '"*.*.iban" matches no column in the live schema'),
]


@pytest.mark.parametrize(("rules", "patterns", "says"), CASES)
def test_unmatched_rules(tmp_path: Path, rules: str, patterns: list[str], says: str) -> None:
    (tmp_path / "p.yaml").write_text("name: p\nextends: [baseline]\n" + rules)
    found = unmatched_rules(load_policy_spec(["p.yaml"], tmp_path), HR)
    assert [f.pattern for f in found] == patterns
    if says:
        assert any(says in f.message for f in found), [f.message for f in found]
    for item in found:
        assert item.source is not None and item.source.file.endswith("p.yaml") and item.source.line


def test_shipped_policies_are_not_reported(tmp_path: Path) -> None:
    # baseline denies pg_toast.*, shop-analyst names public.users...: written for any database
    repo = Path(__file__).resolve().parent.parent
    assert unmatched_rules(load_policy_spec(["shop-analyst", "demo"], repo), HR) == []


def test_names_the_role_cannot_read_count_as_matched(tmp_path: Path) -> None:
    """A deny rule for a relation the grants hide from the role (absent from its snapshot) is
    matched by the catalog's names: it is no typo. A misspelt one still is."""
    (tmp_path / "p.yaml").write_text(
        'name: p\nextends: [baseline]\ntables:\n  "hr.payroll": deny\n  "hr.payrol": deny\n'
        'columns:\n  deny: ["hr.payroll.iban"]\n'
    )
    spec = load_policy_spec(["p.yaml"], tmp_path)
    found = unmatched_rules(spec, HR, existing_tables=["hr.payroll"], existing_columns=["hr.payroll.iban"])
    assert [f.pattern for f in found] == ["hr.payrol"]
    assert '(did you mean "hr.payroll"?)' in found[0].message
