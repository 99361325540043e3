"""The shared lifecycle of an embedded server: spawn a child we own, wait until it is ready,
stop it by its PID.

Each server runs in its own session (start_new_session=True): a Ctrl-C in the terminal then
reaches only our Python process, which stops the servers itself, in order. The price is that
a parent killed with SIGKILL leaves them running; `<name>.pid` in the data dir lets the next
start find such an orphan (by PID, checked against the data path it uses) and stop it.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from devstack.ports import HOST, choose_port, is_port_free, release_port

logger = logging.getLogger(__name__)


class DevstackError(RuntimeError):
    """An embedded server could not be started."""


class ManagedProcess(ABC):
    """One server process. Subclasses say how to prepare, launch and probe it."""

    name: ClassVar[str]
    default_port: ClassVar[int]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 10.0
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        # Absolute: it is compared with the paths a running server uses (see _reclaim_orphan).
        self.data_dir = data_dir.resolve()
        self.port: int = 0
        # A port given by the caller, or one a server already ran on, is kept no matter what;
        # an auto-chosen one is chosen again on the first start (see _ensure_ports).
        self._port_pinned = port is not None
        self._choose_ports(port)
        self._proc: subprocess.Popen[bytes] | None = None

    # --- what subclasses provide -------------------------------------------------------

    @abstractmethod
    def _command(self) -> list[str]:
        """argv of the server, in the foreground."""

    @abstractmethod
    def _prepare(self) -> None:
        """Create directories, init data... before launching. Runs on every launch."""

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _probe(self) -> bool:
        """True once the server accepts clients. Called repeatedly by _wait_ready."""
        raise NotImplementedError

    def _wait_ready(self, deadline: float) -> None:
        self._wait_until(self._probe, deadline)

    def _orphan_marker(self) -> str | None:
        """The data path our own server uses (see uses_path); None: don't look for orphans."""
        return str(self.data_dir)

    def _choose_ports(self, port: int | None) -> None:
        self.port = port if port is not None else choose_port(self.default_port)

    def _ports(self) -> list[int]:
        return [self.port]

    # --- public lifecycle ---------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self) -> None:
        """Launch the server and block until it accepts clients. No-op when running."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._reclaim_orphan()
        self._ensure_ports()
        for attempt in range(1, 4):
            try:
                self._launch_and_wait()
                break
            except DevstackError:
                # Another process (a parallel test run, say) may have bound the port between
                # our check and the server's own bind. An auto-chosen port may move.
                if self._port_pinned or attempt == 3 or all(map(is_port_free, self._ports())):
                    raise
                logger.info("%s: port(s) %s taken meanwhile; retrying on others", self.name, self._ports())
                self._rechoose_ports()
        self._port_pinned = True

    def _launch_and_wait(self) -> None:
        self._prepare()
        command = self._command()
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- devstack: starting {shlex.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_kwargs(),
            )
        self._pidfile.write_text(f"{self._proc.pid} {os.getpid()}\n")
        try:
            self._wait_ready(started + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "%s ready on %s:%d (pid %d) in %.2fs",
            self.name,
            HOST,
            self.port,
            self._proc.pid,
            time.monotonic() - started,
        )

    def stop(self) -> None:
        """Stop the server by its PID: polite signal, then SIGKILL. Never raises; idempotent."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                logger.info("stopping %s (pid %d)", self.name, proc.pid)
                proc.send_signal(self.stop_signal)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "%s (pid %d) still running after %.0fs; killing it",
                        self.name,
                        proc.pid,
                        self.stop_timeout,
                    )
                    # The group is ours alone (new session) and its id cannot be recycled while
                    # the leader is unreaped: this also takes e.g. a Redis AOF-rewrite child.
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("stopping %s (pid %d): %s", self.name, proc.pid, exc)
        finally:
            self._proc = None
            self._pidfile.unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- helpers for subclasses -----------------------------------------------------------

    def _wait_until(self, probe: Callable[[], bool], deadline: float) -> None:
        while True:
            self._raise_if_exited()
            if self._listening() and probe():
                return
            if time.monotonic() > deadline:
                raise self._error(f"not ready after {self.start_timeout:.0f}s")
            time.sleep(0.05)

    def _listening(self) -> bool:
        """Whether our own child holds the port: a probe alone could be answered by another
        process's server that took the port first (ours then fails to bind and exits)."""
        return self._proc is not None and listens_on(self._proc.pid, self.port)

    def _raise_if_exited(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise self._error(f"exited with code {self._proc.returncode} while starting")

    def _error(self, what: str) -> DevstackError:
        return DevstackError(
            f"{self.name} on {HOST}:{self.port} {what}; last lines of {self.log_path}:\n{self.log_tail()}"
        )

    # --- internals ------------------------------------------------------------------------

    @property
    def _pidfile(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    def _ensure_ports(self) -> None:
        if not self._port_pinned:
            # Never used yet: choose again now, as an orphan stopped a moment ago may have
            # been what kept the preferred port busy when we were constructed.
            self._rechoose_ports()
            return
        busy = [port for port in self._ports() if not is_port_free(port)]
        if busy:
            raise DevstackError(f"{self.name}: port(s) {busy} on {HOST} are in use by another process")

    def _rechoose_ports(self) -> None:
        for port in self._ports():
            release_port(port)
        self._choose_ports(None)

    def _reclaim_orphan(self) -> None:
        """Stop a server a previous run of ours left behind (its owner died without stop())."""
        recorded = _read_pidfile(self._pidfile)
        if recorded is None:
            return
        child, owner = recorded
        marker = self._orphan_marker()
        if marker is not None and uses_path(child, marker):
            if pid_alive(owner):
                raise DevstackError(
                    f"{self.name} for {self.data_dir} already runs as pid {child}, "
                    f"started by the live process {owner}"
                )
            logger.warning("stopping orphaned %s (pid %d) left by a previous run", self.name, child)
            terminate_pid(child, self.stop_signal, self.stop_timeout)
        self._pidfile.unlink(missing_ok=True)


def terminate_pid(pid: int, sig: signal.Signals, timeout: float) -> None:
    """Signal a process that is not our child, wait for it to go, SIGKILL it if it won't."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        # Our servers lead their own process group (start_new_session); take its helpers too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def listens_on(pid: int, port: int) -> bool:
    """Whether process pid has a listening TCP socket on port (Linux /proc; elsewhere: True)."""
    if not Path("/proc/self/fd").exists():
        return True
    socket_inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")  # "socket:[INODE]" for sockets
            except OSError:
                continue
            if target.startswith("socket:["):
                socket_inodes.add(target[len("socket:[") : -1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            # sl local_address rem_address st ... inode; address "0100007F:1C49", st 0A=LISTEN
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and local_port == port and fields[9] in socket_inodes:
                return True
    return False


def _read_pidfile(path: Path) -> tuple[int, int] | None:
    try:
        child, owner = path.read_text().split()
        return int(child), int(owner)
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Exists and is not a zombie (an orphan's zombie may linger where nothing reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/PID/stat: "pid (comm) STATE ..."; comm may contain spaces, so split after ')'.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def uses_path(pid: int, path: str) -> bool:
    """Whether pid is alive and works on path: an argument is (in) it, or its cwd is.
    (Redis rewrites its command line, but it chdirs to its --dir, and so does postgres.)
    This is what tells one of our servers from an unrelated process that got a reused PID."""

    def within(candidate: str) -> bool:
        return candidate == path or candidate.startswith(path + os.sep)

    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if any(within(arg.decode(errors="replace")) for arg in args):
            return True
        return within(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
