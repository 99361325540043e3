"""The schema, as Alembic migrations; `run_migrations(url)` is `alembic upgrade head`."""

from __future__ import annotations

from pathlib import Path


def run_migrations(database_url: str, revision: str = "head") -> None:
    """`alembic upgrade <revision>` against `database_url` (`order-engine migrate`: head)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["database_url"] = database_url
    command.upgrade(config, revision)
