"""Listed tokens with their real mint addresses and decimals."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from solders.pubkey import Pubkey

from core.formatting import to_base_units
from market.errors import MarketError, MarketErrorCode


@dataclass(frozen=True)
class Token:
    symbol: str
    mint: str
    decimals: int


TOKENS: tuple[Token, ...] = (
    # SOL trades as wrapped SOL (the native mint) on every venue.
    Token("SOL", "So11111111111111111111111111111111111111112", 9),
    Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6),
    Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6),
    Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5),
    Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6),
    Token("RAY", "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 6),
)

_BY_KEY: dict[str, Token] = {t.symbol: t for t in TOKENS} | {t.mint: t for t in TOKENS}


def find_token(symbol_or_mint: str) -> Token | None:
    """A listed token by symbol (case-insensitive) or mint address."""
    return _BY_KEY.get(symbol_or_mint) or _BY_KEY.get(symbol_or_mint.upper())


def decimals_of(symbol: str) -> int:
    token = find_token(symbol)
    if token is None:
        raise MarketError(MarketErrorCode.INVALID_ORDER, f"unknown token {symbol}")
    return token.decimals


def register_token(token: Token, authoritative: bool = False) -> None:
    """Make a token listed at run time (POST /sim/pools) known to this process. Its pool's
    state carries it, so every process that reads the pool learns it. `authoritative`:
    a real cluster's venues file names it, with its mint's decimals; that wins over a
    simulated token of the same symbol (devnet's USDC is not mainnet's)."""
    if authoritative:
        _BY_KEY[token.symbol] = token
        _BY_KEY[token.mint] = token
        return
    _BY_KEY.setdefault(token.symbol, token)
    _BY_KEY.setdefault(token.mint, token)


def new_token(symbol: str, decimals: int) -> Token:
    """A token listed by the simulation, with a mint address derived from its symbol."""
    mint = Pubkey(hashlib.sha256(f"order-engine mint {symbol}".encode()).digest())
    return Token(symbol, str(mint), decimals)


# What each owner's wallet starts with on the simulated chain (unless
# ORDER_ENGINE_SIM_GENESIS_FUNDS=false), whole tokens.
GENESIS_WALLET = {"SOL": Decimal(10_000), "USDC": Decimal(10_000_000), "USDT": Decimal(10_000_000)}


def genesis_wallet() -> dict[str, int]:
    """The genesis wallet in base units."""
    return {symbol: to_base_units(amount, decimals_of(symbol)) for symbol, amount in GENESIS_WALLET.items()}
