"""Logging for every process: one JSON object per line (structlog), stdlib, uvicorn and
Temporal SDK records included. Lines carry the context they were written in:
`request_id` in the API, `order_id` / `workflow_id` / `activity` in activities."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values must never reach a log line.
SECRET_KEYS = frozenset({"authorization", "api_key", "password", "token", "secret"})


# An API key anywhere in a line (say, uvicorn logging a WebSocket's `?token=`): only its
# public id survives.
_API_KEY = re.compile(r"\b(oe_[0-9A-Za-z]{8})[0-9A-Za-z]{38}\b")
_TOKEN_PARAM = re.compile(r"([?&]token=)[^&\s\"']+")


def redact(text: str) -> str:
    """`text` with every API key cut to its public id and every `token=` value hidden."""
    return _redact(text)


def _redact(text: str) -> str:
    return _TOKEN_PARAM.sub(r"\1[redacted]", _API_KEY.sub(r"\1…[redacted]", text))


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = _redact(value)
    return event


def _temporal_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The SDK's workflow/activity loggers put their context in `extra`; lift the ids."""
    record = event.get("_record")
    info = getattr(record, "temporal_workflow", None) or getattr(record, "temporal_activity", None)
    if isinstance(info, dict):
        workflow_id = info.get("workflow_id")
        if workflow_id:
            event.setdefault("workflow_id", workflow_id)
            if str(workflow_id).startswith("ord_"):
                event.setdefault("order_id", workflow_id)
        if info.get("activity_type"):
            event.setdefault("activity", info["activity_type"])
    return event


def configure_logging(level: str | None = None) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _temporal_context,
        _drop_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _drop_secrets,  # again: a traceback's text may hold what a message would not
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel((level or os.environ.get("ORDER_ENGINE_LOG_LEVEL", "INFO")).upper())
    # uvicorn's loggers write through the root handler, in the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # The SDK's and the HTTP stack's chatter is not what an operator needs to read.
    for noisy in ("temporalio", "sqlalchemy.engine", "httpx", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
