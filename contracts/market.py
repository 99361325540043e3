"""The market's singleton workflows: their ids and their activities' inputs."""

from __future__ import annotations

from dataclasses import dataclass

BACKGROUND_TRADING_WORKFLOW_ID = "market-background-trading"
MARKET_WATCH_WORKFLOW_ID = "market-watch"


@dataclass
class BackgroundTradingRequest:
    duration_s: float


@dataclass
class WatchRequest:
    duration_s: float
