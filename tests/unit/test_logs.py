"""Logs are one JSON object per line, with the context they were written in."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from accounts.keys import generate_key, key_id
from core.logs import configure_logging

KEY, OTHER_KEY = generate_key(), generate_key()


def test_log_lines_are_json_with_context_and_no_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        with structlog.contextvars.bound_contextvars(order_id="ord_X", request_id="req-1"):
            logging.getLogger("activities.quotes").info("[ROUTER] ord_X selected meteora")
            structlog.get_logger("api").info("placed", authorization="Bearer secret-key")
            logging.getLogger("uvicorn.error").warning(
                '%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/orders?orderId=ord_X&token={KEY}"
            )
            logging.getLogger("api").warning("refused key %s", OTHER_KEY)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        root.handlers, root.level = saved
    router, placed, websocket, refused = lines[-4:]
    assert router["event"].startswith("[ROUTER]") and router["order_id"] == "ord_X"
    assert router["request_id"] == "req-1" and router["logger"] == "activities.quotes"
    assert placed["authorization"] == "[redacted]"
    assert "secret-key" not in json.dumps(lines)
    assert "token=[redacted]" in websocket["event"] and KEY not in json.dumps(lines)
    assert refused["event"] == f"refused key {key_id(OTHER_KEY)}…[redacted]"
    assert OTHER_KEY not in json.dumps(lines)


def test_a_traceback_is_redacted_like_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        try:
            raise ValueError(f"could not verify {KEY} at /ws/orders?token={OTHER_KEY}")
        except ValueError:
            logging.getLogger("api").exception("unhandled error")
        text = capsys.readouterr().err
    finally:
        root.handlers, root.level = saved
    assert "ValueError" in text and key_id(KEY) in text
    assert KEY not in text and OTHER_KEY not in text


def test_spans_never_carry_a_websockets_token() -> None:
    from core.tracing import redact_url_attributes

    class Span:
        def __init__(self) -> None:
            self.attributes = {"http.target": f"/ws/orders?orderId=ord_X&token={KEY}", "http.method": "GET"}

        def set_attribute(self, name: str, value: str) -> None:
            self.attributes[name] = value

    span = Span()
    redact_url_attributes(span, {})
    assert span.attributes["http.target"] == "/ws/orders?orderId=ord_X&token=[redacted]"
