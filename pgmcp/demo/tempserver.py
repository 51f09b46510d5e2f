"""A throwaway local PostgreSQL cluster: `initdb` + `pg_ctl`, random port, private socket dir.

Used by the test suite and by `pgmcp demo`. When running as root, the server runs as the
`postgres` system user through `runuser` (PostgreSQL refuses to run as root). Everything lives
under one temporary directory that is removed on `cleanup()`, also at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from pgmcp.errors import PostgresNotFound

INSTALL_HINT = (
    "install PostgreSQL's server binaries (Debian/Ubuntu: `sudo apt-get install postgresql`; "
    "macOS: `brew install postgresql@16`), set PGMCP_PG_BINDIR to the folder holding initdb and "
    "pg_ctl, or point pgmcp at an existing server with --dsn"
)


def find_bindir() -> Path:
    """The folder holding `initdb` and `pg_ctl`, or PostgresNotFound saying how to get them."""
    if env := os.environ.get("PGMCP_PG_BINDIR"):
        # An explicit setting is not second-guessed: a wrong one is reported, not skipped.
        if (Path(env) / "initdb").exists() and (Path(env) / "pg_ctl").exists():
            return Path(env)
        raise PostgresNotFound(
            f"PGMCP_PG_BINDIR is {env}, which holds no initdb and pg_ctl", hint=INSTALL_HINT
        )
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += sorted(glob.glob("/opt/homebrew/opt/postgresql*/bin"), reverse=True)
    candidates += sorted(glob.glob("/usr/local/opt/postgresql*/bin"), reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).parent))
    for cand in candidates:
        path = Path(cand)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise PostgresNotFound("PostgreSQL's server binaries (initdb, pg_ctl) were not found", hint=INSTALL_HINT)


def _find_runuser() -> str:
    """`runuser` (util-linux), which lives in /usr/sbin: not always on a user's PATH."""
    for candidate in (shutil.which("runuser"), "/usr/sbin/runuser", "/sbin/runuser"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise PostgresNotFound(
        "running as root, pgmcp starts PostgreSQL as the postgres user through runuser, which was not found",
        hint="install util-linux (it provides runuser), run pgmcp as an ordinary user, "
        "or point it at an existing server with --dsn",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """One throwaway cluster. `start()`, then connect with `dsn()`; `cleanup()` removes it all."""

    def __init__(self, bindir: Path | None = None, *, port: int | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="pgmcp-pg-"))
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "server.log"
        self.superuser = "postgres"
        self._run_as: str | None = "postgres" if os.geteuid() == 0 else None
        self._runuser = _find_runuser() if self._run_as else ""
        if self._run_as is None:
            self.superuser = pwd.getpwuid(os.geteuid()).pw_name
        else:
            try:
                pwd.getpwnam(self._run_as)
            except KeyError:
                raise PostgresNotFound(
                    "PostgreSQL refuses to run as root, and there is no 'postgres' system user to run it as",
                    hint="create one (`useradd --system postgres`; Debian's postgresql package does), "
                    "run pgmcp as an ordinary user, or point it at an existing server with --dsn",
                ) from None
        self._started = False
        atexit.register(self.cleanup)

    # -- lifecycle -------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        argv = [str(self.bindir / args[0]), *args[1:]]
        return [self._runuser, "-u", self._run_as, "--", *argv] if self._run_as else argv

    def _run(self, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False, cwd=self.base
        )
        if proc.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            output = proc.stderr.strip() or proc.stdout.strip()
            raise RuntimeError(f"{args[0]} failed (exit {proc.returncode}): {output}\n{log}")

    def init(self) -> None:
        self.sockdir.mkdir(mode=0o700)
        self.datadir.mkdir(mode=0o700)
        if self._run_as:
            ent = pwd.getpwnam(self._run_as)
            os.chmod(self.base, 0o755)
            for path in (self.base, self.datadir, self.sockdir):
                os.chown(path, ent.pw_uid, ent.pw_gid)
        self._run(
            "initdb", "-D", str(self.datadir), "-U", self.superuser, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
        }
        with open(self.datadir / "postgresql.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> TemporaryPostgres:
        if not self.datadir.exists():
            self.init()
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60", "start")
        self._started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self._started:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")
            self._started = False

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._started

    def cleanup(self) -> None:
        """Stop the server (immediately) and remove every file it had. Safe to call twice."""
        # A postmaster.pid means a server may be running even if start() never returned
        # (interrupted during `pg_ctl start`): stop it too.
        if self._started or (self.datadir / "postmaster.pid").exists():
            self._started = True
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- connecting ------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        """A libpq/asyncpg DSN over TCP on 127.0.0.1."""
        return f"postgresql://{quote(user or self.superuser)}@127.0.0.1:{self.port}/{quote(dbname)}"

    def run_sql(self, sql: str, dbname: str = "postgres") -> str:
        """Run a script with psql as the superuser (for setup, never for user SQL)."""
        return run_psql(self.dsn(dbname), sql)


def run_psql(dsn: str, sql: str, timeout: float = 300) -> str:
    """Run an SQL script through psql (ON_ERROR_STOP) and return its output."""
    psql = shutil.which("psql")
    if psql is None:
        with contextlib.suppress(PostgresNotFound):
            cand = find_bindir() / "psql"
            psql = str(cand) if cand.exists() else None
    if psql is None:
        raise PostgresNotFound("psql was not found", hint=INSTALL_HINT)
    proc = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", dsn, "-f", "-"],
        input=sql, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
    return proc.stdout
