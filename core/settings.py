"""One settings object for every process, from the environment, `.env` and `infra.env`."""

from __future__ import annotations

import base64
from decimal import Decimal
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.domain import MarketMode
from core.secrets import load_or_create_secret

INFRA_ENV_FILE = "infra.env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    api_host: str = Field("127.0.0.1", alias="ORDER_ENGINE_API_HOST")
    api_port: int = Field(8000, alias="ORDER_ENGINE_API_PORT")
    data_dir: Path = Field(Path("./.order-engine"), alias="ORDER_ENGINE_DATA_DIR")

    temporal_address: str = Field("", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", alias="TEMPORAL_NAMESPACE")
    database_url: str = Field("", alias="DATABASE_URL")
    redis_url: str = Field("", alias="REDIS_URL")

    max_concurrent_activities: int = Field(10, ge=1, alias="ORDER_ENGINE_MAX_CONCURRENT_ACTIVITIES")
    orders_per_minute: float = Field(100, gt=0, alias="ORDER_ENGINE_ORDERS_PER_MINUTE")
    # Route computing per market-watcher tick (it always takes at least one order's turn).
    watcher_tick_budget_ms: float = Field(100, gt=0, alias="ORDER_ENGINE_WATCHER_TICK_BUDGET_MS")

    sim_quote_latency_ms: float = Field(200, ge=0, alias="ORDER_ENGINE_SIM_QUOTE_LATENCY_MS")
    sim_execution_latency_ms: float = Field(2500, ge=0, alias="ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS")
    sim_failure_rate: float = Field(0.05, ge=0, le=1, alias="ORDER_ENGINE_SIM_FAILURE_RATE")
    sim_background_trades_per_s: float = Field(2, ge=0, alias="ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S")
    sim_seed: int | None = Field(None, alias="ORDER_ENGINE_SIM_SEED")
    # A new owner's wallet starts with the genesis amounts (10 000 SOL, 10 M USDC and USDT).
    sim_genesis_funds: bool = Field(True, alias="ORDER_ENGINE_SIM_GENESIS_FUNDS")
    # HMAC secret for stored API keys; unset: kept in $ORDER_ENGINE_DATA_DIR/api-key-secret.
    api_key_secret: SecretStr | None = Field(None, alias="ORDER_ENGINE_API_KEY_SECRET")
    # Abuse limits, per key (operator keys are exempt).
    # Orders and strategies a key may place per minute (refused ones included); never above what the
    # system executes (ORDER_ENGINE_ORDERS_PER_MINUTE), whatever is set.
    orders_per_minute_per_key: int = Field(100, ge=1, alias="ORDER_ENGINE_ORDERS_PER_MINUTE_PER_KEY")
    # Quotes a key may ask for per minute (refused ones included): each plans a route.
    quotes_per_minute_per_key: int = Field(600, ge=1, alias="ORDER_ENGINE_QUOTES_PER_MINUTE_PER_KEY")
    # Orders an owner may have open (queued, executing or waiting) at once.
    max_open_orders_per_owner: int = Field(1000, ge=1, alias="ORDER_ENGINE_MAX_OPEN_ORDERS_PER_OWNER")
    # Strategies (TWAP, DCA, brackets) an owner may have running or paused at once.
    max_running_strategies_per_owner: int = Field(
        20, ge=1, alias="ORDER_ENGINE_MAX_RUNNING_STRATEGIES_PER_OWNER"
    )
    websockets_per_key: int = Field(1000, ge=1, alias="ORDER_ENGINE_WEBSOCKETS_PER_KEY")
    # Requests without a valid key, per client address and API process (429 above).
    failed_auth_per_minute: int = Field(300, ge=1, alias="ORDER_ENGINE_FAILED_AUTH_PER_MINUTE")
    # The proxies (comma-separated IPs or CIDRs) whose X-Forwarded-For names the client;
    # empty: the header is ignored and the connection's peer is the client.
    trusted_proxies: str = Field("", alias="ORDER_ENGINE_TRUSTED_PROXIES")
    max_order_sol: Decimal = Field(Decimal(10_000), gt=0, alias="ORDER_ENGINE_MAX_ORDER_SOL")
    # Which market orders trade on: the simulated one (default) or a Solana cluster over
    # JSON-RPC (docs/venues.md). In `rpc` mode the four below are read, and a process
    # refuses to start unless `require_chain()` passes.
    market: MarketMode = Field(MarketMode.SIM, alias="ORDER_ENGINE_MARKET")
    rpc_url: str = Field("", alias="ORDER_ENGINE_RPC_URL")
    venues_file: Path | None = Field(None, alias="ORDER_ENGINE_VENUES_FILE")
    # Fernet key (URL-safe base64 of 32 bytes) sealing owners' keypairs at rest.
    wallet_key: SecretStr | None = Field(None, alias="ORDER_ENGINE_WALLET_KEY")
    allow_mainnet: bool = Field(False, alias="ORDER_ENGINE_ALLOW_MAINNET")
    # Per JSON-RPC request; a slower answer is a transient fault the step retries.
    rpc_timeout_s: float = Field(10, gt=0, alias="ORDER_ENGINE_RPC_TIMEOUT_S")
    # For everyone: request bodies above this answer 413.
    max_body_bytes: int = Field(64 * 1024, ge=1024, alias="ORDER_ENGINE_MAX_BODY_BYTES")
    # Protocol-level WebSocket pings; a client that does not answer in time is closed.
    ws_ping_interval_s: float = Field(20, gt=0, alias="ORDER_ENGINE_WS_PING_INTERVAL_S")
    ws_ping_timeout_s: float = Field(20, gt=0, alias="ORDER_ENGINE_WS_PING_TIMEOUT_S")
    # Threads per process that plan routes (quotes, exact-out and triggered orders), off the
    # event loop that serves every other request.
    route_planning_threads: int = Field(2, ge=1, alias="ORDER_ENGINE_ROUTE_PLANNING_THREADS")
    # /metrics reads whole-table aggregates at most this often per API process.
    metrics_cache_s: float = Field(5, ge=0, alias="ORDER_ENGINE_METRICS_CACHE_S")
    # OpenTelemetry tracing: off, console or otlp (OTEL_EXPORTER_OTLP_ENDPOINT).
    tracing: str = Field("off", alias="ORDER_ENGINE_TRACING", pattern="^(off|console|otlp)$")
    # host:port where a worker serves the Temporal SDK's Prometheus metrics; empty: off.
    worker_metrics_address: str = Field("", alias="ORDER_ENGINE_WORKER_METRICS_ADDRESS")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        _networks(value)  # a typo must not silently trust nobody (or everybody)
        return value

    @field_validator("venues_file", "wallet_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("sim_seed", mode="before")
    @classmethod
    def _empty_seed_is_random(cls, value: object) -> object:
        return None if value == "" else value

    def with_infra_env(self) -> Settings:
        """Fill unset infra URLs from `$ORDER_ENGINE_DATA_DIR/infra.env` (written by `infra`/`dev`)."""
        missing = {
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }
        if all(missing.values()):
            return self
        found = read_env_file(self.data_dir / INFRA_ENV_FILE)
        update = {key.lower(): found[key] for key, value in missing.items() if not value and key in found}
        return self.model_copy(update=update)

    def require_infra(self) -> Settings:
        """Settings with every infra URL present, or a clear error saying how to get them."""
        settings = self.with_infra_env()
        absent = [
            name
            for name, value in (
                ("TEMPORAL_ADDRESS", settings.temporal_address),
                ("DATABASE_URL", settings.database_url),
                ("REDIS_URL", settings.redis_url),
            )
            if not value
        ]
        if absent:
            raise RuntimeError(
                f"{', '.join(absent)} not set and not found in "
                f"{settings.data_dir / INFRA_ENV_FILE}: start `order-engine infra` first "
                "or set them to existing servers"
            )
        return settings

    def require_chain(self) -> Settings:
        """In `rpc` mode: these settings, or a clear error naming what is missing or
        invalid (a process refuses to start on it). The venues file and the cluster are
        checked where they are loaded (onchain/)."""
        if self.market is MarketMode.SIM:
            return self
        problems = []
        if not self.rpc_url:
            problems.append("ORDER_ENGINE_RPC_URL is not set")
        elif not self.rpc_url.startswith(("http://", "https://")):
            # JSON-RPC over HTTP only: anything else fails later as an endpoint that "does not answer".
            problems.append(f"ORDER_ENGINE_RPC_URL must be an http:// or https:// URL, not {self.rpc_url!r}")
        if self.venues_file is None:
            problems.append("ORDER_ENGINE_VENUES_FILE is not set")
        if self.wallet_key is None:
            problems.append("ORDER_ENGINE_WALLET_KEY is not set (a Fernet key: Fernet.generate_key())")
        elif not is_fernet_key(self.wallet_key.get_secret_value()):
            problems.append("ORDER_ENGINE_WALLET_KEY is not a Fernet key (URL-safe base64 of 32 bytes)")
        if problems:
            raise RuntimeError("ORDER_ENGINE_MARKET=rpc: " + "; ".join(problems))
        return self

    def key_secret(self) -> str:
        if self.api_key_secret is not None:
            return self.api_key_secret.get_secret_value()
        return load_or_create_secret(self.data_dir)

    @property
    def placement_rate_per_key(self) -> int:
        """Orders a key may place per minute: the setting, capped at the system's rate."""
        return max(1, min(self.orders_per_minute_per_key, int(self.orders_per_minute)))

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return _networks(self.trusted_proxies)

    @property
    def sync_database_url(self) -> str:
        """The plain `postgresql://` form for tools that do not speak SQLAlchemy URLs."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


# The environment variables Settings reads.
SETTINGS_NAMES = frozenset(field.alias for field in Settings.model_fields.values() if field.alias)


def is_fernet_key(text: str) -> bool:
    """URL-safe base64 of exactly 32 bytes, as `Fernet.generate_key()` makes."""
    try:
        return len(base64.urlsafe_b64decode(text.encode("ascii"))) == 32 and len(text) == 44
    except (ValueError, UnicodeEncodeError):
        return False


def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """`10.0.0.1, 10.1.0.0/16, ::1` as networks; ValueError on anything else."""
    return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@lru_cache
def get_settings() -> Settings:
    return Settings()
