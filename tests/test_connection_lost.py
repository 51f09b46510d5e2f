"""Which asyncpg client errors mean the connection (not the query) failed: data-driven."""

from __future__ import annotations

import asyncpg
import pytest

from pgmcp.db.pgerrors import ErrorContext, is_connection_lost, translate

CASES = [
    ("connection is closed", True),
    ("cannot call Connection.fetch(): connection was closed in the middle of operation", True),
    ("cannot switch to state 15; another operation (2) is in progress", True),
    ("cannot perform operation: another operation is in progress", True),
    ("the server expects 1 argument for this query, 0 were passed", False),
    ("invalid input for query argument $1", False),
]


@pytest.mark.parametrize(("text", "lost"), CASES)
def test_interface_errors(text: str, lost: bool) -> None:
    exc = asyncpg.InterfaceError(text)
    assert is_connection_lost(exc) is lost
    code = translate(exc, ErrorContext(database="shop")).code
    assert (code == "database_unavailable") is lost, code
