"""Order statuses and types, and the venues: the vocabulary every layer shares."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    ROUTING = "ROUTING"
    BUILDING = "BUILDING"
    SUBMITTED = "SUBMITTED"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {OrderStatus.CONFIRMED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
)


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    SNIPER = "sniper"
    STOP_LOSS = "stop_loss"  # fires when the price falls to trigger_price
    TAKE_PROFIT = "take_profit"  # fires when the price rises to trigger_price
    TRAILING_STOP = "trailing_stop"  # fires trailing_bps below the best price seen


class StrategyType(StrEnum):
    TWAP = "twap"  # an amount in equal slices, one every interval_s
    DCA = "dca"  # one order per period, on a Temporal Schedule
    BRACKET = "bracket"  # a take-profit and a stop; the first to fire cancels the other


class StrategyAction(StrEnum):
    """What a client may ask of a running strategy (POST /strategies/{id}/<action>)."""

    PAUSE = "pause"  # hold future orders (a DCA pauses its Schedule)
    RESUME = "resume"
    CANCEL = "cancel"  # stop future orders; one already executing finishes


class StrategyStatus(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in (
            StrategyStatus.COMPLETED,
            StrategyStatus.CANCELLED,
            StrategyStatus.FAILED,
            StrategyStatus.EXPIRED,
        )


class Dex(StrEnum):
    """The venues the engine routes across."""

    RAYDIUM = "raydium"
    METEORA = "meteora"


DEXES: tuple[Dex, ...] = tuple(Dex)


class MarketMode(StrEnum):
    """What orders trade on: the simulated market, or a Solana cluster over JSON-RPC."""

    SIM = "sim"
    RPC = "rpc"


class WalletCustody(StrEnum):
    """Whose keypair a wallet is: one the simulation made (its seed stored), or an owner's
    own keypair the service holds for the real chain (stored sealed: wallets/custody.py)."""

    SIMULATED = "SIMULATED"
    HELD = "HELD"


class ReservationState(StrEnum):
    """What became of the funds an order reserved when it was accepted."""

    HELD = "HELD"  # the order may still spend them
    SPENT = "SPENT"  # its transaction landed: the reservation became the spend
    RELEASED = "RELEASED"  # the order ended without executing


class FeeLevel(StrEnum):
    """Priority fee levels: the p25/p50/p75/p95 of recently landed fees."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"


class FailureStage(StrEnum):
    """Where an execution attempt failed: before sending, waiting to land, or on chain."""

    SIMULATION = "simulation"
    LANDING = "landing"
    CHAIN = "chain"


class SwapMode(StrEnum):
    EXACT_IN = "exact_in"  # spend `amount`, receive at least `min_amount_out`
    EXACT_OUT = "exact_out"  # receive exactly `amount`, spend at most `max_amount_in`
