"""Choosing TCP ports on 127.0.0.1 for the embedded servers."""

from __future__ import annotations

import socket
import threading

HOST = "127.0.0.1"

# Ports this process has handed out. A port found free is not bound until its server starts,
# so without this two components set up back to back (or in parallel) could get the same one.
_handed_out: set[int] = set()
_lock = threading.Lock()


def is_port_free(port: int) -> bool:
    """True when nothing listens on HOST:port (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def choose_port(preferred: int | None = None) -> int:
    """`preferred` when it is free (stable URLs across `make run`s), else any free port."""
    with _lock:
        if preferred is not None and preferred not in _handed_out and is_port_free(preferred):
            _handed_out.add(preferred)
            return preferred
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def release_port(port: int) -> None:
    """Let choose_port hand out `port` again (its owner is choosing anew)."""
    with _lock:
        _handed_out.discard(port)
