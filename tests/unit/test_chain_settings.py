"""What a process checks before it starts on a real chain (`Settings.require_chain`), and
the priority-fee levels it derives from the cluster's recent fees (onchain/fees.py)."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from solders.pubkey import Pubkey

from core.domain import MarketMode
from core.settings import Settings, is_fernet_key
from onchain.fees import FRESH_S, MIN_MEDIUM, ChainFees, fee_levels

FERNET_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def no_engine_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test passes counts: not the shell's ORDER_ENGINE_* nor a .env file."""
    for name in list(os.environ):
        if name.startswith("ORDER_ENGINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def rpc_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "ORDER_ENGINE_MARKET": "rpc",
        "ORDER_ENGINE_RPC_URL": "http://127.0.0.1:8899",
        "ORDER_ENGINE_VENUES_FILE": "venues.toml",
        "ORDER_ENGINE_WALLET_KEY": FERNET_KEY,
    }
    values.update(overrides)
    return settings(**values)


def refusal(chain: Settings) -> str:
    with pytest.raises(RuntimeError) as raised:
        chain.require_chain()
    return str(raised.value)


# -- require_chain --------------------------------------------------------------------


def test_the_simulated_market_needs_nothing_of_the_chain() -> None:
    sim = settings()
    assert sim.market is MarketMode.SIM
    assert sim.require_chain() is sim


def test_rpc_mode_with_everything_set_passes() -> None:
    chain = rpc_settings()
    assert chain.market is MarketMode.RPC
    assert chain.require_chain() is chain
    assert chain.venues_file == Path("venues.toml")


def test_rpc_mode_with_nothing_set_lists_every_missing_piece_at_once() -> None:
    message = refusal(settings(ORDER_ENGINE_MARKET="rpc"))
    assert message.startswith("ORDER_ENGINE_MARKET=rpc:")
    for name in ("ORDER_ENGINE_RPC_URL", "ORDER_ENGINE_VENUES_FILE", "ORDER_ENGINE_WALLET_KEY"):
        assert f"{name} is not set" in message, message
    assert "Fernet.generate_key()" in message  # how to make the key


@pytest.mark.parametrize(
    "missing", ["ORDER_ENGINE_RPC_URL", "ORDER_ENGINE_VENUES_FILE", "ORDER_ENGINE_WALLET_KEY"]
)
def test_rpc_mode_names_the_one_missing_piece_and_no_other(missing: str) -> None:
    message = refusal(rpc_settings(**{missing: ""}))  # set but empty counts as unset
    assert f"{missing} is not set" in message
    assert message.count("is not set") == 1


@pytest.mark.parametrize("url", ["localhost:8899", "ws://127.0.0.1:8900", "api.devnet.solana.com"])
def test_an_rpc_url_that_is_not_http_is_refused_naming_it(url: str) -> None:
    message = refusal(rpc_settings(ORDER_ENGINE_RPC_URL=url))
    assert f"ORDER_ENGINE_RPC_URL must be an http:// or https:// URL, not {url!r}" in message


def test_https_rpc_urls_are_accepted() -> None:
    assert rpc_settings(ORDER_ENGINE_RPC_URL="https://api.devnet.solana.com").require_chain()


def test_rpc_mode_from_the_environment_reads_the_same_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_ENGINE_MARKET", "rpc")
    monkeypatch.setenv("ORDER_ENGINE_RPC_URL", "http://127.0.0.1:8899")
    monkeypatch.setenv("ORDER_ENGINE_WALLET_KEY", "not-a-key")
    message = refusal(settings())
    assert "ORDER_ENGINE_VENUES_FILE is not set" in message
    assert "ORDER_ENGINE_WALLET_KEY is not a Fernet key" in message
    assert "ORDER_ENGINE_RPC_URL" not in message


@pytest.mark.parametrize(
    "key",
    [
        "hunter2",
        "x" * 44,  # the right length, not base64 of 32 bytes
        base64.urlsafe_b64encode(bytes(16)).decode(),  # base64, 16 bytes
        base64.urlsafe_b64encode(bytes(33)).decode(),  # base64, 33 bytes
        base64.urlsafe_b64encode(bytes(32)).decode().rstrip("="),  # unpadded
        FERNET_KEY[:-2] + "é=",  # not ASCII
    ],
)
def test_a_wallet_key_that_is_not_a_fernet_key_is_refused(key: str) -> None:
    assert not is_fernet_key(key)
    message = refusal(rpc_settings(ORDER_ENGINE_WALLET_KEY=key))
    assert "ORDER_ENGINE_WALLET_KEY is not a Fernet key" in message
    assert key not in message  # a secret, even a wrong one, is not echoed


def test_generated_fernet_keys_are_accepted_and_agree_with_fernet() -> None:
    for _ in range(20):
        key = Fernet.generate_key().decode()
        assert is_fernet_key(key)
        Fernet(key)  # what the seal will do with it
        assert rpc_settings(ORDER_ENGINE_WALLET_KEY=key).require_chain().wallet_key is not None


def test_an_invalid_market_mode_is_refused_when_settings_load() -> None:
    with pytest.raises(ValueError, match="ORDER_ENGINE_MARKET"):
        settings(ORDER_ENGINE_MARKET="mainnet")


# -- fee levels -----------------------------------------------------------------------


def test_levels_are_the_percentiles_of_recent_fees_whatever_their_order() -> None:
    fees = [1_000 * n for n in range(100, 0, -1)]  # 1 000 .. 100 000, descending
    levels = fee_levels(fees)
    assert (levels.low, levels.medium, levels.high, levels.very_high) == (25_000, 50_000, 75_000, 95_000)
    assert levels.congestion == 1.0


def test_levels_never_decrease_from_low_to_very_high() -> None:
    samples: list[list[int]] = [
        [0, 0, 0, 5_000_000],
        [10, 20, 30],
        [7],
        [0] * 50 + [2_000] * 50,
        [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5],
    ]
    for fees in samples:
        levels = fee_levels(fees)
        assert levels.low <= levels.medium <= levels.high <= levels.very_high, (fees, levels)


def test_medium_is_never_below_the_floor_on_an_idle_cluster() -> None:
    levels = fee_levels([0] * 150)
    assert levels.medium == MIN_MEDIUM
    assert levels.high >= MIN_MEDIUM and levels.very_high >= MIN_MEDIUM
    assert levels.low == 0
    assert levels.congestion == 0.0


def test_a_busy_cluster_keeps_its_own_medium_above_the_floor() -> None:
    assert fee_levels([MIN_MEDIUM * 7] * 10).medium == MIN_MEDIUM * 7


def test_congestion_is_the_share_of_slots_that_paid_a_fee() -> None:
    assert fee_levels([0, 0, 0, 100]).congestion == 0.25


def test_no_recent_fees_give_the_floor_and_no_congestion() -> None:
    levels = fee_levels([])
    assert (levels.low, levels.medium, levels.high, levels.very_high) == (
        0,
        MIN_MEDIUM,
        MIN_MEDIUM,
        MIN_MEDIUM,
    )
    assert levels.congestion == 0.0


class CountingRpc:
    def __init__(self, fees: list[int]) -> None:
        self.fees = fees
        self.asked: list[list[Pubkey]] = []

    async def prioritization_fees(self, accounts: Sequence[Pubkey]) -> list[int]:
        self.asked.append(list(accounts))
        return list(self.fees)


async def test_levels_are_read_at_most_once_per_freshness_window_for_at_most_128_accounts() -> None:
    now = [100.0]
    rpc = CountingRpc([5_000] * 10)
    pools = [Pubkey.new_unique() for _ in range(200)]
    fees = ChainFees(rpc, lambda: pools, clock=lambda: now[0])  # type: ignore[arg-type]
    assert (await fees.levels()).medium == 5_000
    now[0] += FRESH_S / 2
    rpc.fees = [9_000] * 10
    assert (await fees.levels()).medium == 5_000  # still fresh: no round trip
    assert len(rpc.asked) == 1
    now[0] += FRESH_S
    assert (await fees.levels()).medium == 9_000
    assert len(rpc.asked) == 2
    assert rpc.asked[0] == pools[:128]  # getRecentPrioritizationFees takes up to 128
