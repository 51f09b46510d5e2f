"""The generated docs pages equal what their sources give now (scripts/gen_reference.py).

docs/config-reference.md comes from schemas/config.schema.json and docs/rules.md from the rule
table and tests/rules/*.yaml. A change to a source without regenerating fails here, naming the
command that brings the page up to date.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from pgmcp.policy.rules import RULES

REPO = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "scripts" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
# Each page rendered once for this module (rendering the rules page checks every example).
RENDERED = {page: functools.cache(render) for page, render in GEN.PAGES.items()}


@pytest.mark.parametrize("page", sorted(GEN.PAGES))
def test_committed_page_is_up_to_date(page: str) -> None:
    committed = (REPO / "docs" / page).read_text(encoding="utf-8")
    assert committed == RENDERED[page](), f"docs/{page} is out of date: run {GEN.COMMAND}"


def test_every_config_key_is_in_the_reference() -> None:
    page = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    schema = json.loads((REPO / "schemas" / "config.schema.json").read_text(encoding="utf-8"))

    def keys(node: dict[str, object]) -> list[str]:
        found = []
        if "$ref" in node:
            node = schema["$defs"][str(node["$ref"]).rsplit("/", 1)[-1]]
        for name, sub in dict(node.get("properties", {})).items():  # type: ignore[call-overload]
            found.append(name)
            found.extend(keys(sub))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            found.extend(keys(extra))
        items = node.get("items")
        if isinstance(items, dict):
            found.extend(keys(items))
        return found

    missing = [k for k in keys(schema) if f"`{k}`" not in page]
    assert not missing, f"config keys missing from docs/config-reference.md: {missing}"


def test_every_rule_has_a_section_with_an_example() -> None:
    page = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    for code, rule in RULES.items():
        section = page.split(f"### {code}\n", 1)
        assert len(section) == 2, f"{code} has no section in docs/rules.md"
        body = section[1].split("\n### ", 1)[0]
        assert f"`{rule.name}`" in body and "\n- " in body, f"{code}: no name or no example in docs/rules.md"


def test_check_mode_reports_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for page, render in RENDERED.items():
        (tmp_path / page).write_text(render(), encoding="utf-8")
    monkeypatch.setattr(GEN, "DOCS", tmp_path)
    monkeypatch.setattr(GEN, "PAGES", RENDERED)  # the same renderers, each run once (above)
    assert GEN.main(["--check"]) == 0
    (tmp_path / "rules.md").write_text("stale\n", encoding="utf-8")
    assert GEN.stale_pages() == ["docs/rules.md"]
    assert GEN.main(["--check"]) == 1
