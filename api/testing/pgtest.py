"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

:class:`TempCluster` runs ``initdb`` into a fresh folder under the system's temporary
directory, starts ``postgres`` on a Unix socket in that folder (and, if asked, on a
loopback TCP port), and on :meth:`TempCluster.stop` stops it and deletes the folder.
Nothing outside the folder is touched: no system cluster, no service, no port 5432.

The binaries are Debian's (``/usr/lib/postgresql/<major>/bin``, the newest major
installed), or those of ``GEOFENCE_PG_BIN``, or whatever ``initdb`` is on the PATH.
PostgreSQL refuses to run as root: as root, the cluster is owned by and runs as the
``postgres`` user that Debian's package creates (``runuser``), otherwise as the
current user. Every failure raises :class:`ClusterError` with the server's log: the
callers (the test session, the benchmarks) fail loudly rather than skip.

    with TempCluster() as pg:
        url = pg.create_database("t1")   # postgresql+psycopg://postgres@/t1?host=…
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["ClusterError", "TempCluster", "find_bindir"]

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Server settings of a test cluster: nothing is worth an fsync in a throwaway cluster.
FAST = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

#: Settings of every cluster (each test app holds a small connection pool).
COMMON = {
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # tests provoke unique violations on purpose
}


class ClusterError(RuntimeError):
    """PostgreSQL could not be found, initialised or started."""


def find_bindir() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``; ClusterError if none."""
    env = os.environ.get("GEOFENCE_PG_BIN")
    candidates: list[Path] = [Path(env)] if env else []

    def major(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(Path(which).resolve().parent)
    for d in candidates:
        if all((d / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    raise ClusterError(
        "PostgreSQL is not installed (no initdb/pg_ctl/postgres under /usr/lib/postgresql/*/bin"
        " or on the PATH): run `bash .ci/install-postgres` (Debian's postgresql packages)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempCluster:
    """A PostgreSQL cluster in a temporary folder, removed on :meth:`stop`.

    Parameters
    ----------
    durable : bool
        Keep PostgreSQL's defaults (fsync, synchronous commit: what a deployment
        runs); by default the cluster trades durability for speed (:data:`FAST`).
    tcp : bool
        Also listen on a free loopback port (:attr:`port`); the Unix socket in the
        cluster's folder is always there.
    settings : dict, optional
        More ``postgres -c`` settings.
    """

    def __init__(
        self,
        *,
        durable: bool = False,
        tcp: bool = False,
        settings: dict[str, str] | None = None,
        prefix: str = "pg_",
    ) -> None:
        self.bindir = find_bindir()
        self.durable = durable
        self.tcp = tcp
        self.settings = dict(COMMON) | ({} if durable else FAST) | dict(settings or {})
        self.prefix = prefix
        self.root: Path | None = None
        self.port = 5432
        self.user = "postgres"  # the cluster's superuser
        self._runas: str | None = None
        self._started = False

    # ------------------------------------------------------------------ paths
    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    # ------------------------------------------------------------------ running
    def _cmd(self, *args: str) -> list[str]:
        if self._runas is None:
            return list(args)
        return ["runuser", "-u", self._runas, "--", *args]

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        try:
            r = subprocess.run(
                self._cmd(*args),
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "LC_ALL": "C", "LANG": "C"},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"{args[0]} failed: {exc}") from exc
        if r.returncode != 0:
            raise ClusterError(
                f"{Path(args[0]).name} failed ({r.returncode}): {r.stdout}{r.stderr}"
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        with contextlib.suppress(Exception):
            if self.log_file.exists():
                return "\n--- postgres.log ---\n" + self.log_file.read_text()[-4000:]
        return ""

    def start(self) -> TempCluster:
        """initdb, start, wait until it accepts connections. Raises ClusterError."""
        if self._started:
            return self
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix))
        try:
            if os.geteuid() == 0:
                try:
                    pw = pwd.getpwnam("postgres")
                except KeyError:
                    raise ClusterError(
                        "running as root, and there is no `postgres` user to run PostgreSQL "
                        "as (it refuses to run as root): install Debian's postgresql package"
                    ) from None
                if not shutil.which("runuser"):
                    raise ClusterError("running as root and `runuser` is missing")
                self._runas = "postgres"
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            if self._runas is not None:
                pw = pwd.getpwnam(self._runas)
            self.socket_dir.mkdir()
            if self._runas is not None:
                os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)
                self.log_file.touch()
                os.chown(self.log_file, pw.pw_uid, pw.pw_gid)
            listen = "''"
            if self.tcp:
                self.port = _free_port()
                listen = "127.0.0.1"
            opts = [f"-p {self.port}", f"-k {self.socket_dir}", f"-c listen_addresses={listen}"]
            opts += [f"-c {k}={v}" for k, v in self.settings.items()]
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(opts),
                "start",
            )
            self._started = True
            atexit.register(self.stop)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=5) as c:
                    c.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"PostgreSQL does not answer: {exc}{self._log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (immediately: it is throwaway) and delete its folder."""
        if self._started:
            self._started = False
            with contextlib.suppress(ClusterError):
                pg_ctl = str(self.bindir / "pg_ctl")
                self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> TempCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string (Unix socket) for ``psycopg.connect``."""
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={dbname}"

    def url(self, dbname: str = "postgres", *, tcp: bool = False) -> str:
        """A SQLAlchemy URL (``postgresql+psycopg``): the Unix socket, or loopback TCP."""
        if tcp:
            if not self.tcp:
                raise ValueError("this cluster does not listen on TCP (TempCluster(tcp=True))")
            return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql+psycopg://{self.user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str, *, tcp: bool = False) -> str:
        """Create database ``name`` (lower-case identifier); returns its SQLAlchemy URL."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name, tcp=tcp)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting whoever is still connected."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
