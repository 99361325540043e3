"""The addresses of the running stack, and the env file that hands them to other processes."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InfraUrls:
    temporal_address: str  # "127.0.0.1:7233"
    temporal_ui_url: str | None  # "http://127.0.0.1:8233", None when headless
    database_url: str  # SQLAlchemy asyncpg URL: "postgresql+asyncpg://postgres@127.0.0.1:5433/postgres"
    redis_url: str  # "redis://127.0.0.1:6390/0"

    def as_env(self) -> dict[str, str]:
        env = {
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }
        if self.temporal_ui_url is not None:
            env["TEMPORAL_UI_URL"] = self.temporal_ui_url
        return env


def write_infra_env(path: Path, urls: InfraUrls) -> None:
    """Write KEY=VALUE lines; atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key}={value}\n" for key, value in urls.as_env().items())
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as tmp:
            tmp.write(text)
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600; this is no secret
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_infra_env(path: Path) -> dict[str, str]:
    """The KEY=VALUE pairs of a file written by write_infra_env; {} when it is missing."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key.strip()] = value.strip()
    return env
