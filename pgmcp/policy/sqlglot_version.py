"""sqlglot and its compiled twin sqlglotc must be the same release, checked when the policy
engine loads.

sqlglotc installs mypyc-compiled modules into sqlglot's own package folder, where they shadow
the `.py` files of the same name. With different releases, compiled modules of one version run
against pure-Python modules of another: parsing may fail in odd places or, worse, quietly
produce a different tree. pgmcp's verdicts rest on that tree, so a mismatch stops here with a
message saying what to reinstall, rather than go unnoticed.
"""

from __future__ import annotations

from importlib import metadata

from pgmcp.errors import BrokenInstall


def mismatch(sqlglot: str, sqlglotc: str | None) -> str | None:
    """What is wrong with this pair of installed versions (None: nothing; no sqlglotc is fine)."""
    if sqlglotc is None or sqlglotc == sqlglot:
        return None
    return (
        f"sqlglot {sqlglot} and sqlglotc {sqlglotc} are installed together; sqlglotc's compiled "
        "modules replace sqlglot's and must come from the same release"
    )


def installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_sqlglot() -> None:
    """Raise `BrokenInstall` when the installed sqlglot and sqlglotc differ."""
    sqlglot = installed("sqlglot")
    problem = mismatch(sqlglot or "(none)", installed("sqlglotc"))
    if problem:
        raise BrokenInstall(
            problem,
            hint=f"pip install 'sqlglot=={sqlglot}' 'sqlglotc=={sqlglot}' (or pip uninstall sqlglotc: "
            "pgmcp runs on pure-Python sqlglot too, only slower)",
        )
