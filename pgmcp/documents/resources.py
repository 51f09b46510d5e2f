"""Where the files pgmcp ships beside its code live: `policies/` and `schemas/`.

Lookup, first hit wins:
1. `$PGMCP_SHARE_DIR/<kind>` when that variable is set (packagers, tests);
2. `pgmcp/data/<kind>` inside the installed package (wheels copy the folders there);
3. `<kind>` at the top of the source tree, next to the `pgmcp/` package folder (a checkout
   or an editable install, `pip install -e .`);
4. `<prefix>/share/pgmcp/<kind>`, where a wheel installs them (`data-files` in pyproject.toml).
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache
from pathlib import Path

from pgmcp.errors import PgmcpError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the pgmcp/ package folder
SHIPPED_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class ResourceNotFound(PgmcpError):
    code = "resource_not_found"


def _candidates(kind: str) -> list[Path]:
    found = []
    override = os.environ.get("PGMCP_SHARE_DIR")
    if override:
        found.append(Path(override) / kind)
    found.append(_PACKAGE_DIR / "data" / kind)
    found.append(_PACKAGE_DIR.parent / kind)
    found.append(Path(sys.prefix) / "share" / "pgmcp" / kind)
    return found


@cache
def _folder(kind: str) -> Path:
    for candidate in _candidates(kind):
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in _candidates(kind))
    raise ResourceNotFound(
        f"cannot find pgmcp's shipped {kind}/ folder (looked in {tried})",
        hint="reinstall pgmcp, or set PGMCP_SHARE_DIR to the folder holding policies/ and schemas/",
    )


def policies_dir() -> Path:
    return _folder("policies")


def schemas_dir() -> Path:
    return _folder("schemas")


def shipped_policy_names() -> list[str]:
    """Names of the shipped policies (`baseline`, `shop-analyst`, ...), sorted."""
    return sorted(p.stem for p in policies_dir().glob("*.yaml"))


def shipped_policy_path(name: str) -> Path | None:
    """The file of shipped policy `name`, or None when there is no such policy."""
    if not SHIPPED_NAME.match(name):
        return None
    path = policies_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def schema_path(name: str) -> Path:
    """The JSON Schema file for documents of kind `name` (`config` or `policy`)."""
    path = schemas_dir() / f"{name}.schema.json"
    if not path.is_file():
        raise ResourceNotFound(f"no shipped schema named {name!r} ({path})")
    return path


def resolve_policy_ref(ref: str, base_dir: Path) -> Path | None:
    """The file a policy reference names, or None when it does not exist.

    A reference containing a slash or ending in `.yaml`/`.yml` is a path (relative to
    `base_dir`, the folder of the file that names it); anything else is the name of a
    shipped policy (`baseline`, `shop-analyst`, ...).
    """
    if is_policy_path(ref):
        path = (base_dir / ref).resolve()
        return path if path.is_file() else None
    return shipped_policy_path(ref)


def is_policy_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))
