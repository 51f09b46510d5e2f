"""Metrics for stdio deployments: each server process keeps a snapshot file that `pgmcp stats` reads.

A stdio server has no HTTP port for `/metrics`, and its host owns its stdin/stdout, so the
process writes `metrics.snapshot()` as JSON to `<stats dir>/<pid>.json` every few seconds and
removes it on exit. The stats dir is `$PGMCP_STATS_DIR`, else `$XDG_STATE_HOME/pgmcp/stats`,
else `~/.local/state/pgmcp/stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from loguru import logger

from pgmcp.observe import metrics

INTERVAL = 5.0


def stats_dir() -> Path:
    if env := os.environ.get("PGMCP_STATS_DIR"):
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pgmcp" / "stats"


def write_snapshot(path: Path, extra: dict[str, Any]) -> None:
    """Atomically replace `path` with the current metrics (and `extra`: pid, config, health)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"pid": os.getpid(), "written_at": time.time(), **extra, "metrics": metrics.snapshot()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stats-")
    with os.fdopen(fd, "w") as out:
        json.dump(body, out, default=str)
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StatsWriter:
    """Writes this process's snapshot file every `interval` seconds until `stop()`."""

    def __init__(self, extra: dict[str, Any], *, directory: Path | None = None, interval: float = INTERVAL):
        self.path = (directory or stats_dir()) / f"{os.getpid()}.json"
        self._extra = extra
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pgmcp-stats-writer")

    async def _loop(self) -> None:
        while True:
            try:
                write_snapshot(self.path, self._extra)
            except OSError as exc:
                logger.warning("cannot write the stats file {}: {}", self.path, exc)
                return
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_live_snapshots(directory: Path | None = None) -> list[dict[str, Any]]:
    """The snapshots of running pgmcp processes; files of dead processes are removed."""
    folder = directory or stats_dir()
    out: list[dict[str, Any]] = []
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not pid_alive(int(data.get("pid", 0))):
            with contextlib.suppress(OSError):
                file.unlink()
            continue
        out.append(data)
    return out
