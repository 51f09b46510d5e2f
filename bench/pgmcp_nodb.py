"""`pgmcp serve` with the database taken out of repeated calls: a measuring instrument only.

Each distinct SQL text is checked and run once, as usual; a later `execute_sql` of the same
text gets that first result back without the check or PostgreSQL (`Runtime.execute_named`
remembered). Everything else a call does is pgmcp's own: the MCP SDK, the tool wrapper
(request scope, audit scope, metrics, the INFO line), the result model, the rows spliced into
the stdio line. `bench_peers.py --only pgmcp-nodb,...` runs it beside pgmcp and the SDK's bare
hello server: the difference to hello is pgmcp's MCP layer, the difference to pgmcp is the
check and the database.

    python bench/pgmcp_nodb.py serve --config pgmcp.yaml
"""

from __future__ import annotations

import sys
from typing import Any

from pgmcp.cli.main import main
from pgmcp.service import runtime

_first: dict[tuple[str, str | None], Any] = {}
_execute_named = runtime.Runtime.execute_named


async def execute_named(self: runtime.Runtime, sql: str, database: str | None) -> Any:
    key = (sql, database)
    if key not in _first:
        _first[key] = await _execute_named(self, sql, database)
    return _first[key]


if __name__ == "__main__":
    runtime.Runtime.execute_named = execute_named  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
