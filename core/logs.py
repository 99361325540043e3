"""Logging set-up shared by every process: one line per record, to stderr."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("ORDER_ENGINE_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # The SDK's and the HTTP stack's chatter is not what an operator needs to read.
    for noisy in ("temporalio", "sqlalchemy.engine", "httpx", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
