"""Policy loading: every refusal in tests/cases/policy_errors.yaml, merge semantics, sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgmcp.documents.resources import shipped_policy_path
from pgmcp.errors import PolicyError, SourceLocation
from pgmcp.policy.document import load_policy_file, load_policy_spec
from pgmcp.policy.spec import PolicySpec, PolicyTest
from tests.casefiles import load_cases

REPO = Path(__file__).resolve().parent.parent
CASES_FILE = Path(__file__).parent / "cases" / "policy_errors.yaml"
CASE_KEYS = {"id", "document", "files", "file", "error", "line", "key_path"}

SHOP_ANALYST = """\
# yaml-language-server: $schema=../schemas/policy.schema.json
name: shop-analyst
extends: [baseline]
statements: [select, explain]        # explain = plain EXPLAIN of an allowed SELECT; ANALYZE only if `explain_analyze: true`
tables:
  "public.*": allow                  # globs over schema-qualified names; relations not matched are denied
  "public.secrets": deny
columns:
  deny: ["public.users.password_hash", "*.*.ssn"]
row_filters:
  public.orders: "tenant_id = 1"     # every read of orders sees only these rows
functions:
  allow: ["st_*"]                    # on top of the built-in safe set; the dangerous set can never be allowed
limits:
  max_rows: 100
  statement_timeout: 2s
"""  # noqa: E501 (the exact document from issue 2, comments included)


def _cases() -> list[dict[str, Any]]:
    return load_cases(CASES_FILE, CASE_KEYS)


def test_enough_cases() -> None:
    assert len(_cases()) >= 12


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_policy_error(case: dict[str, Any], tmp_path: Path) -> None:
    for name, text in case.get("files", {}).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "policy.yaml"
    path.write_text(case["document"], encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    error = caught.value
    text = str(error)
    for expected in case["error"]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert error.location.file == str(tmp_path / case.get("file", "policy.yaml")), text
    assert error.location.line == case["line"], text
    assert error.location.key_path == case["key_path"], text
    assert error.code == "invalid_policy"


def _rules(spec: PolicySpec, section: str) -> list[tuple[str, str, str, int | None]]:
    return [(r.pattern, r.action, Path(r.source.file).name, r.source.line) for r in getattr(spec, section)]


def test_shipped_shop_analyst_is_the_issue_document() -> None:
    path = shipped_policy_path("shop-analyst")
    assert path is not None
    assert path.read_text(encoding="utf-8") == SHOP_ANALYST


def test_shop_analyst_merged_with_sources() -> None:
    spec = load_policy_spec(["shop-analyst"], REPO)
    assert spec.name == "shop-analyst"
    assert [Path(f).name for f in spec.files] == ["shop-analyst.yaml", "baseline.yaml"]
    assert spec.statements == frozenset({"select", "explain"})
    assert spec.statements_source is not None and spec.statements_source.line == 4
    assert spec.explain_analyze is False
    # The child's allow replaces baseline's "*.*" allow; denies accumulate from both.
    assert sorted(_rules(spec, "tables")) == sorted(
        [
            ("public.*", "allow", "shop-analyst.yaml", 6),
            ("public.secrets", "deny", "shop-analyst.yaml", 7),
            ("pg_catalog.*", "deny", "baseline.yaml", 12),
            ("information_schema.*", "deny", "baseline.yaml", 13),
            ("pg_toast.*", "deny", "baseline.yaml", 14),
        ]
    )
    assert _rules(spec, "columns") == [
        ("public.users.password_hash", "deny", "shop-analyst.yaml", 9),
        ("*.*.ssn", "deny", "shop-analyst.yaml", 9),
    ]
    assert spec.columns[1].source.key_path == "columns.deny[1]"
    assert _rules(spec, "functions") == [("st_*", "allow", "shop-analyst.yaml", 13)]
    (row_filter,) = spec.row_filters
    assert (row_filter.table, row_filter.condition) == ("public.orders", "tenant_id = 1")
    assert row_filter.source.line == 11
    assert row_filter.source.key_path == 'row_filters["public.orders"]'
    assert spec.max_rows == 100
    assert spec.max_rows_source is not None and spec.max_rows_source.line == 15
    assert spec.statement_timeout_ms == 2000
    assert spec.search_path == ("public",)
    assert spec.tests == ()  # baseline's tests are baseline's


def test_empty_refs_mean_baseline() -> None:
    spec = load_policy_spec([], REPO)
    assert spec.name == "baseline"
    assert spec.statements == frozenset({"select"})
    assert ("*.*", "allow") in [(r.pattern, r.action) for r in spec.tables]
    assert spec.functions == ()
    assert [t.expect for t in spec.tests][:2] == ["allow", "deny"]


def test_permissive_allows_everything_but_explain() -> None:
    spec = load_policy_spec(["permissive"], REPO)
    assert spec.statements == frozenset({"select"})
    assert [(r.pattern, r.action) for r in spec.tables] == [("*.*", "allow")]
    assert [(r.pattern, r.action) for r in spec.functions] == [("*", "allow")]
    assert spec.deny_dangerous_functions


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_merge_semantics(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "grand.yaml",
        "name: grand\nstatements: [select, explain]\nexplain_analyze: true\nsearch_path: [app, public]\n"
        "tables: {'*.*': allow, 'audit.*': deny}\ncolumns: {allow: ['*.*.*'], deny: ['*.*.ssn']}\n"
        "functions: {allow: ['lower'], deny: ['md5']}\nrow_filters: {app.orders: 'tenant_id = 1'}\n"
        "limits: {max_rows: 50, statement_timeout: 1s}\ntests: [{sql: SELECT 1, expect: allow}]\n",
    )
    _write(
        tmp_path,
        "parent.yaml",
        "name: parent\nextends: [grand.yaml]\nstatements: [select]\n"
        "tables: {'app.*': allow}\nfunctions: {deny: ['sha256']}\n"
        "row_filters: {app.items: 'not hidden'}\nlimits: {max_rows: 20}\n",
    )
    child = _write(
        tmp_path,
        "child.yaml",
        "name: child\nextends: [parent.yaml, grand.yaml]\ncolumns: {deny: ['app.users.email']}\n"
        "functions: {allow: ['upper']}\ntests: [{sql: SELECT 2, expect: deny, rules: [PGM201]}]\n",
    )
    spec = load_policy_file(child)
    assert spec.name == "child"
    assert [Path(f).name for f in spec.files] == ["child.yaml", "parent.yaml", "grand.yaml"]
    assert spec.statements == frozenset({"select"})  # parent overrides grand
    assert Path(spec.statements_source.file).name == "parent.yaml"  # type: ignore[union-attr]
    assert spec.explain_analyze is True  # only grand sets it
    assert spec.search_path == ("app", "public")
    assert [(r.pattern, r.action) for r in spec.tables] == [("app.*", "allow"), ("audit.*", "deny")]
    assert [(r.pattern, r.action) for r in spec.columns] == [
        ("*.*.*", "allow"),
        ("*.*.ssn", "deny"),
        ("app.users.email", "deny"),
    ]
    assert [(r.pattern, r.action) for r in spec.functions] == [
        ("upper", "allow"),
        ("md5", "deny"),
        ("sha256", "deny"),
    ]
    assert [f.table for f in spec.row_filters] == ["app.orders", "app.items"]
    assert (spec.max_rows, spec.statement_timeout_ms) == (20, 1000)
    assert spec.tests == (
        PolicyTest("SELECT 2", "deny", ("PGM201",), None, SourceLocation(str(child), 5, 9, "tests[0]")),
    )


def test_several_refs_merge_in_order(tmp_path: Path) -> None:
    _write(tmp_path, "extra.yaml", "name: extra\ntables: {'shop.*': allow}\nlimits: {max_rows: 7}\n")
    spec = load_policy_spec(["shop-analyst", "extra.yaml"], tmp_path)
    assert spec.name == "shop-analyst+extra"
    assert ("shop.*", "allow") in [(r.pattern, r.action) for r in spec.tables]
    assert ("public.*", "allow") not in [(r.pattern, r.action) for r in spec.tables]
    assert ("public.secrets", "deny") in [(r.pattern, r.action) for r in spec.tables]
    assert spec.max_rows == 7
    assert spec.statement_timeout_ms == 2000


def test_unknown_ref_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no shipped policy named 'shop_analyst'") as caught:
        load_policy_spec(["shop_analyst"], tmp_path)
    assert "did you mean 'shop-analyst'?" in str(caught.value)


def test_every_shipped_policy_loads() -> None:
    folder = REPO / "policies"
    for path in sorted(folder.glob("*.yaml")):
        spec = load_policy_file(path)
        assert spec.files[0] == str(path.resolve())
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema=../schemas/policy.schema.json\n")
