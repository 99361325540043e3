"""Applying the schema: `alembic upgrade head` against a database URL."""

from __future__ import annotations

from pathlib import Path


def run_migrations(database_url: str) -> None:
    """`alembic upgrade head` against `database_url` (the `order-engine migrate` command)."""
    from alembic import command
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")
