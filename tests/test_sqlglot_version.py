"""sqlglot and sqlglotc of different releases stop pgmcp with a message saying what to reinstall."""

from __future__ import annotations

import pytest

from pgmcp.errors import BrokenInstall
from pgmcp.policy import sqlglot_version


@pytest.mark.parametrize(
    ("sqlglot", "sqlglotc", "problem"),
    [
        ("30.30.0", "30.30.0", None),
        ("30.30.0", None, None),  # pure Python only: fine
        ("30.31.0", "30.30.0", "sqlglot 30.31.0 and sqlglotc 30.30.0"),
        ("30.30.0", "30.30.1", "sqlglot 30.30.0 and sqlglotc 30.30.1"),
    ],
)
def test_mismatch(sqlglot: str, sqlglotc: str | None, problem: str | None) -> None:
    found = sqlglot_version.mismatch(sqlglot, sqlglotc)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_installed_pair_agrees() -> None:
    sqlglot_version.check_sqlglot()


def test_a_mismatch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"sqlglot": "30.31.0", "sqlglotc": "30.30.0"}
    monkeypatch.setattr(sqlglot_version, "installed", versions.get)
    with pytest.raises(BrokenInstall) as caught:
        sqlglot_version.check_sqlglot()
    assert caught.value.code == "broken_install"
    assert "pip install 'sqlglot==30.31.0' 'sqlglotc==30.31.0'" in str(caught.value)
