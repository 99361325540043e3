"""The failure codes a venue or the chain answers, shared by the market (which raises
them), the activities (which decide what each calls for) and the workflows (which match
a few of them). A venue adapter maps its program's errors onto these."""

from __future__ import annotations

from enum import StrEnum


class MarketErrorCode(StrEnum):
    RATE_LIMITED = "RATE_LIMITED"  # a venue's quote endpoint (or the RPC endpoint) answered 429
    RPC_UNAVAILABLE = "RPC_UNAVAILABLE"  # the RPC endpoint failed (5xx, timeout, refused)
    ACCOUNT_IN_USE = "ACCOUNT_IN_USE"
    TRANSACTION_DROPPED = "TRANSACTION_DROPPED"
    BLOCKHASH_EXPIRED = "BLOCKHASH_EXPIRED"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    POOL_NOT_FOUND = "POOL_NOT_FOUND"
    POOL_NOT_OPEN = "POOL_NOT_OPEN"
    INVALID_ORDER = "INVALID_ORDER"
    ORDER_CLOSED = "ORDER_CLOSED"  # its reservation was released: the order ended
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"  # a pool cannot fill a leg at all
    COMPUTE_BUDGET_EXCEEDED = "COMPUTE_BUDGET_EXCEEDED"  # its work exceeded its compute-unit limit
    # Not landed by its last valid block height: it never can, it paid nothing.
    TRANSACTION_EXPIRED = "TRANSACTION_EXPIRED"
