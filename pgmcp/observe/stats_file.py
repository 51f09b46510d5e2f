"""Metrics for stdio deployments: each server process keeps its `/metrics` text in a file that
`pgmcp stats` reads.

A stdio server has no HTTP port for `/metrics`, and its host owns its stdin/stdout, so the
process writes the registry's exposition (`pgmcp.observe.metrics.render_prometheus`, exactly
what `/metrics` serves) to `<stats dir>/<pid>.prom` every `$PGMCP_STATS_INTERVAL` seconds
(default 5), and removes it on exit.
The first line is a comment naming the process (`# pgmcp pid=... config=...`), which Prometheus
parsers skip. The stats dir is `$PGMCP_STATS_DIR`, else `$XDG_STATE_HOME/pgmcp/stats`, else
`~/.local/state/pgmcp/stats`.

(prometheus_client's multiprocess mode solves a different problem, one metric set shared by
the workers of one server, and keeps counters of exited processes; each stdio server is a
separate server, and `pgmcp stats` shows the live ones.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from pgmcp.observe.metrics import render_prometheus

INTERVAL = 5.0
MIN_INTERVAL = 0.05
SUFFIX = ".prom"
_HEADER = re.compile(r"^# pgmcp (\{.*\})$")


def stats_dir() -> Path:
    if env := os.environ.get("PGMCP_STATS_DIR"):
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pgmcp" / "stats"


def stats_interval() -> float:
    """Seconds between rewrites: `$PGMCP_STATS_INTERVAL`, else 5. A value that is not a number
    of at least 0.05 is named in a warning and the default is used (the server keeps serving)."""
    raw = os.environ.get("PGMCP_STATS_INTERVAL", "").strip()
    if not raw:
        return INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not MIN_INTERVAL <= value < float("inf"):
        logger.warning("PGMCP_STATS_INTERVAL is {!r}, not a number of seconds >= {}: using {}", raw, MIN_INTERVAL,
                       INTERVAL)
        return INTERVAL
    return value


def write_stats(path: Path, config: str | None) -> None:
    """Atomically replace `path` with this process's header line and current metrics."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"pid": os.getpid(), "config": config})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stats-")
    with os.fdopen(fd, "w") as out:
        out.write(f"# pgmcp {header}\n{render_prometheus()}")
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
    """Writes this process's stats file every `interval` seconds until `stop()`."""

    def __init__(self, config: str | None, *, directory: Path | None = None, interval: float | None = None):
        self.path = (directory or stats_dir()) / f"{os.getpid()}{SUFFIX}"
        self._config = config
        self._interval = stats_interval() if interval is None else interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pgmcp-stats-writer")

    async def _loop(self) -> None:
        while True:
            try:
                write_stats(self.path, self._config)
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


@dataclass(frozen=True)
class ServerStats:
    """One running server's stats file: who wrote it, and its exposition text."""

    pid: int
    config: str | None
    text: str


def read_live_stats(directory: Path | None = None) -> list[ServerStats]:
    """The stats of running pgmcp processes; files of dead processes are removed."""
    folder = directory or stats_dir()
    out: list[ServerStats] = []
    for file in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        try:
            text = file.read_text()
            header = _HEADER.match(text.partition("\n")[0])
            about = json.loads(header[1]) if header else {}
            pid = int(about.get("pid", 0))
        except (OSError, ValueError, TypeError):
            continue
        if not pid_alive(pid):
            with contextlib.suppress(OSError):
                file.unlink()
            continue
        out.append(ServerStats(pid, about.get("config"), text))
    return out
