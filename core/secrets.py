"""Secrets kept in the data directory when the environment does not give them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# The file that holds the API keys' HMAC secret when ORDER_ENGINE_API_KEY_SECRET is not set.
API_KEY_SECRET_FILE = "api-key-secret"


def load_or_create_secret(data_dir: Path, name: str = API_KEY_SECRET_FILE) -> str:
    """The secret kept in `data_dir/name`, created on first use (mode 0600). Processes
    that share a database must share the secret: production sets it in the environment."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: a process starting at the same moment reads
    # either no file or a whole one, and the first link wins.
    draft = data_dir / f".{name}.{os.getpid()}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()
