"""Loading YAML case files so that a typo in a case key fails loudly instead of testing nothing."""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path
from typing import Any

import yaml


def load_cases(path: Path, keys: Set[str]) -> list[dict[str, Any]]:
    """The cases (a YAML list of mappings) in `path`; any key outside `keys` fails the test run."""
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    for case in cases:
        unknown = set(case) - set(keys)
        assert not unknown, f"{path.name}: unknown keys {sorted(unknown)} in case {case.get('id', case)!r}"
    return list(cases)
