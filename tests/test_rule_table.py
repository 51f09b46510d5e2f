"""The README's rule table says exactly what the rule declarations say (pgmcp.policy.rules)."""

from __future__ import annotations

import re
from pathlib import Path

from pgmcp.policy.rules import RULES

README = Path(__file__).parent.parent / "README.md"
ROW = re.compile(r"^\| `(PGM\d{3})` \| `([a-z-]+)` \| (.+?) \| `(.+)` \|$")


def test_readme_rule_table_matches_the_declarations() -> None:
    rows = {m.group(1): m for line in README.read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))}
    assert set(rows) == set(RULES), "README rule table and pgmcp.policy.rules differ"
    for code, rule in RULES.items():
        assert (rows[code].group(2), rows[code].group(3)) == (rule.name, rule.summary), code


def test_codes_are_declared_once_and_named_after_themselves() -> None:
    import pgmcp.policy.rules as rules

    constants = {name: value for name, value in vars(rules).items() if re.fullmatch(r"PGM\d{3}", name)}
    assert {name: value.code for name, value in constants.items()} == {c: c for c in RULES}
    assert len({r.name for r in RULES.values()}) == len(RULES)
