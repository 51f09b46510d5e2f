"""`--claims '{"tenant_id": 1}'` for `check-sql` and `policy test`: lint and test row filters
that name claims (`tenant_id = :tenant_id`) as the principal with these claims would see them.

Without `--claims` the claims are empty, so a table whose filter needs a claim is refused,
naming the claim, exactly as for a token that lacks it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pgmcp.errors import UsageError
from pgmcp.policy.claims import bind_spec_filters
from pgmcp.policy.compiler import CompiledPolicy


def add_claims_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--claims", metavar="JSON", default=None,
        help='identity claims bound into row filters that name them (:tenant_id), e.g. \'{"tenant_id": 1}\'',
    )


def parse_claims(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--claims is not valid JSON: {exc}", hint='write e.g. --claims \'{"tenant_id": 1}\'') from exc
    if not isinstance(value, dict):
        raise UsageError("--claims must be a JSON object of claim names to values",
                         hint='write e.g. --claims \'{"tenant_id": 1, "groups": ["analysts"]}\'')
    return value


def with_claims(policy: CompiledPolicy, text: str | None) -> CompiledPolicy:
    """`policy` with the `--claims` bound into its row filters."""
    return bind_spec_filters(policy, parse_claims(text))[0]
