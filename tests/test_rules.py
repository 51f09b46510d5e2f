"""One YAML case file per rule under tests/rules/: every case is checked against the real checker.

The loader refuses unknown keys, so a typo in a case file fails instead of silently testing
nothing. Policies are shipped names (`shop-analyst`, the default) or paths relative to
tests/rules/; `snapshot: true` judges with the small fixture schema below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.rules import RULES
from pgmcp.schema.snapshot import ColumnInfo, CompositeType, RelationInfo, SchemaSnapshot

RULES_DIR = Path(__file__).parent / "rules"
REPO = Path(__file__).parent.parent
FILE_KEYS = {"rule", "policy", "cases"}
CASE_KEYS = {"sql", "sql_repeat", "expect", "rules", "policy", "snapshot", "rewritten", "rewritten_contains"}


def _rel(name: str, cols: str, kind: str = "table", deps: tuple[tuple[str, str], ...] = ()) -> RelationInfo:
    columns = tuple(ColumnInfo(c, "text") for c in cols.split())
    return RelationInfo("public", name, kind, columns, depends_on=deps)  # type: ignore[arg-type]


SNAPSHOT = SchemaSnapshot(
    database="shop",
    relations=(
        _rel("users", "id name password_hash ssn"),
        _rel("orders", "id tenant_id total"),
        _rel("secrets", "id secret"),
        _rel("secret_view", "id", "view", (("public", "secrets"),)),
        _rel("user_view", "id name", "view", (("public", "users"),)),
        # a regclass column: its values meet untyped literals as relation names (PGM205)
        RelationInfo("public", "audit_log", "table", (ColumnInfo("id", "integer"), ColumnInfo("rel", "regclass"))),
        RelationInfo(
            "public", "customers", "table", (ColumnInfo("id", "integer"), ColumnInfo("address", "public.address"))
        ),
    ),
    # A composite type, for field selection `(address).city` (not a call of city)
    composites=(
        CompositeType("public", "address", "public.address", (ColumnInfo("city", "text"), ColumnInfo("zip", "text"))),
    ),
)

_policies: dict[str, CompiledPolicy] = {}


def _policy(ref: str) -> CompiledPolicy:
    if ref not in _policies:
        base = RULES_DIR if ref.endswith(".yaml") else REPO
        _policies[ref] = compile_policy(load_policy_spec([ref], base))
    return _policies[ref]


def _load() -> list[Any]:
    params = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        unknown = set(doc) - FILE_KEYS
        assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
        assert doc["rule"] in RULES, f"{path.name}: unknown rule {doc['rule']}"
        assert path.stem == doc["rule"], f"{path.name}: file name must be the rule code"
        for index, case in enumerate(doc["cases"]):
            unknown = set(case) - CASE_KEYS
            assert not unknown, f"{path.name} case {index}: unknown keys {sorted(unknown)}"
            assert case["expect"] in ("allow", "deny"), f"{path.name} case {index}: expect allow|deny"
            params.append(pytest.param(doc, case, id=f"{doc['rule']}-{index}"))
    return params


def _sql(case: dict[str, Any]) -> str:
    if "sql_repeat" in case:
        head, unit, n, middle, tail, m = case["sql_repeat"]
        return str(head + unit * n + middle + tail * m)
    return str(case["sql"])


def test_every_rule_has_a_case_file() -> None:
    have = {p.stem for p in RULES_DIR.glob("*.yaml")}
    assert set(RULES) - have == set()


@pytest.mark.parametrize(("doc", "case"), _load())
def test_rule_case(doc: dict[str, Any], case: dict[str, Any]) -> None:
    policy = _policy(case.get("policy", doc.get("policy", "shop-analyst")))
    verdict = check(_sql(case), policy, SNAPSHOT if case.get("snapshot") else None)
    codes = [v.rule for v in verdict.violations]
    assert verdict.allowed == (case["expect"] == "allow"), verdict.reason()
    for code in case.get("rules", []):
        assert code in codes, f"expected {code}, got {codes}: {verdict.reason()}"
    if "rewritten" in case:
        assert verdict.rewritten_sql == case["rewritten"]
    if "rewritten_contains" in case:
        assert verdict.rewritten_sql is not None and case["rewritten_contains"] in verdict.rewritten_sql
    for v in verdict.violations:
        assert v.name == RULES[v.rule].name and v.message


def test_codes_are_declared_once_and_named_after_themselves() -> None:
    """Each rule is a module constant named after its code; RULES holds exactly those."""
    import re

    import pgmcp.policy.rules as rules

    constants = {name: value for name, value in vars(rules).items() if re.fullmatch(r"PGM\d{3}", name)}
    assert {name: value.code for name, value in constants.items()} == {c: c for c in RULES}
    assert len({r.name for r in RULES.values()}) == len(RULES)
