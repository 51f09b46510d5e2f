"""The body of a policy-checker process (see `pgmcp.db.offload.CheckWorkers`).

It reads requests from its pipe: `(database, policy token, policy or None, snapshot token,
snapshot or None, sql)`, keeps the latest policy and snapshot of each database (sent only when
they changed), and answers `("ok", Verdict)` or `("error", text)`. It ends when the pipe closes.
It runs at a lower CPU priority than the server, so that the server keeps answering while a
hostile statement is being checked.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from multiprocessing.connection import Connection
from typing import Any

from pgmcp.policy.checker import check

NICENESS = 5  # a hostile statement's check yields the CPU to the server's event loop


def serve(conn: Connection) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICENESS)
    with contextlib.suppress(OSError):
        os.dup2(2, 1)  # stdout is the MCP protocol's in stdio mode: nothing here may write to it
    held: dict[str, list[Any]] = {}  # database -> [policy token, policy, snapshot token, snapshot]
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            database, ptok, policy, stok, snapshot, sql = pickle.loads(request)
            slot = held.setdefault(database, [0, None, 0, None])
            if policy is not None:
                slot[0], slot[1] = ptok, policy
            if snapshot is not None or stok != slot[2]:
                slot[2], slot[3] = stok, snapshot
            reply: tuple[str, Any] = ("ok", check(sql, slot[1], slot[3]))
        except Exception as exc:  # reported to the parent, which refuses the statement
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send_bytes(pickle.dumps(reply))
        except (EOFError, OSError):
            return
