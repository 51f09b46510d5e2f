"""The files pgmcp ships with its code: the policies (`policies/`) and the JSON Schemas
(`schemas/`), read through `importlib.resources` from `pgmcp/data/`.

In the repository the folders sit at the top (where people edit and link to them) and
`pgmcp/data/policies` and `pgmcp/data/schemas` are symlinks to them; a wheel carries the files
themselves in `pgmcp/data/` (package data). Either way the package finds them in one place.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

from pgmcp.errors import PgmcpError

SHIPPED_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class ResourceNotFound(PgmcpError):
    code = "resource_not_found"


@cache
def _folder(kind: str) -> Path:
    # Policies are named in error messages and loaded by path like any user file, so the
    # folder must be a real directory (it is, for wheels and checkouts: pgmcp is never
    # imported from a zip archive).
    folder = resources.files("pgmcp").joinpath("data", kind)
    if not isinstance(folder, Path) or not folder.is_dir():
        raise ResourceNotFound(
            f"pgmcp's shipped {kind}/ folder is missing from the installed package ({folder})",
            hint="reinstall pgmcp",
        )
    return folder.resolve()  # the files' own place (in a checkout: policies/, schemas/)


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
