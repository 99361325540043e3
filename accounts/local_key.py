"""The local operator key of a development machine: made on the first run, printed once
and kept in `$ORDER_ENGINE_DATA_DIR/api-key` (mode 0600)."""

from __future__ import annotations

import asyncio
import os

from accounts.keys import LOCAL_KEY_FILE, LOCAL_KEY_NAME
from accounts.service import ApiKeys
from core.settings import Settings
from storage.database import create_engine, create_sessionmaker


def ensure_local_key(settings: Settings) -> None:
    path = settings.data_dir / LOCAL_KEY_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:  # exclusive: of two processes starting at once, one creates the key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        key = asyncio.run(create_key(settings, LOCAL_KEY_NAME, operator=True))
    except BaseException:
        os.close(fd)
        path.unlink()
        raise
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    print(f"\nCreated a local operator API key (kept in {path}):\n  {key}\n", flush=True)


async def create_key(settings: Settings, name: str, operator: bool) -> str:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        key, _ = await ApiKeys(create_sessionmaker(engine), settings.key_secret()).create(name, operator)
    finally:
        await engine.dispose()
    return key
