"""The API process (`order-engine api`): the FastAPI app under uvicorn, and a shutdown
that tells WebSocket clients the server is going away.

uvicorn closes open WebSockets with 1012 when it stops; our clients should see 1001
("going away") so they reconnect elsewhere. This server asks every order stream to
close with 1001 first, then shuts down as usual.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from core.logs import configure_logging
from core.settings import Settings
from processes.chain_start import refuse_unless_chain_ready
from storage.events import EventHub

GOING_AWAY_WAIT_S = 2.0


class ApiServer(uvicorn.Server):
    def __init__(self, app: FastAPI, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hub: EventHub | None = getattr(self._app.state, "hub", None)
        if hub is not None:
            await hub.going_away(GOING_AWAY_WAIT_S)
        await super().shutdown(sockets)


def api_server(
    settings: Settings, host: str | None = None, port: int | None = None, log_level: str = "info"
) -> ApiServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=log_level,
        log_config=None,  # keep the process's JSON logging (core/logs.py)
        access_log=False,  # the app logs each request itself, with its request_id
        # uvicorn would take X-Forwarded-For from 127.0.0.1 by default; the app reads it
        # only from the proxies ORDER_ENGINE_TRUSTED_PROXIES lists (api/client_address.py).
        proxy_headers=False,
        # Protocol-level keep-alive: a client that stops answering pings is closed (1011);
        # a quiet subscription that answers them is never closed.
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
    )
    return ApiServer(app, config)


def serve_api(settings: Settings) -> None:
    configure_logging()
    refuse_unless_chain_ready(settings)
    asyncio.run(api_server(settings).serve())
