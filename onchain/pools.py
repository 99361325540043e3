"""The venues file's pools as the chain shows them, for the router, the watcher and the
transaction builder: one `getMultipleAccounts` fetches every pool's accounts (a second
only when a DLMM's active bin has moved into bin arrays not fetched before), and each
venue's adapter decodes them into the same pool snapshots the simulated market's math
runs on (market/pools.py), so routing, splits and multi-hop work unchanged.

The pool source API (`all`, `pairs`, `known_pairs`, …) is the simulated PoolStore's;
what a real chain adds is here too: mints, swap instructions, error codes, and reading
a landed transaction's meta back in tokens.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from contracts.failures import MarketErrorCode
from market.errors import MarketError
from market.ledger import LandedLeg
from market.pools import Pool
from market.tokens import Token, register_token
from market.transactions import SwapLeg
from onchain.rpc import AccountData, LandedTransaction, SolanaRpc, check_cluster
from onchain.spl import Mint, NotATokenAccount, decode_mint
from onchain.venues_file import PoolEntry, VenueKind, VenuesFile

SLOT_S = 0.4
FRESH_S = 1.0
STALE_S = 10.0  # served while the endpoint fails, no older  # pool state older than this is fetched again (quotes, the watcher's tick)
CLOCK_SYSVAR = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")


@dataclass(frozen=True)
class ClusterClock:
    """The Clock sysvar, fetched with the pools: the cluster's own slot, epoch (Token-2022
    fees) and unix time (DLMM's volatility decay, pools' opening times)."""

    slot: int
    epoch: int
    unix_timestamp: int

    @classmethod
    def decode(cls, data: bytes) -> ClusterClock:
        slot, _, epoch, _, unix_timestamp = struct.unpack_from("<QqQQq", data)
        return cls(slot, epoch, unix_timestamp)


class PoolLoadError(ValueError):
    """A pool of the venues file that cannot be traded; the message says why."""


@dataclass(frozen=True)
class PoolSnapshot:
    """One pool as decoded at a slot: the router's pool and the venue's own state."""

    entry: PoolEntry
    pool: Pool
    state: Any  # the adapter's decoded state (what its swap instruction needs)
    accounts: tuple[Pubkey, ...]  # what to fetch next time, besides the pool's own account


@dataclass(frozen=True)
class DecodedLeg:
    """A swap instruction of ours read back: which pool, which way, what it asked."""

    pool: Pubkey
    token_in: str
    token_out: str
    amount_in: int  # exact-in: the amount; exact-out: the most it may take
    amount_out: int  # exact-in: the minimum; exact-out: the exact amount
    exact_out: bool


class VenueAdapter(Protocol):
    kind: VenueKind
    program_ids: frozenset[Pubkey]  # mainnet's, and devnet's where it differs

    def dependencies(self, address: Pubkey, data: bytes) -> list[Pubkey]:
        """What else decoding this pool needs (config, vaults, bin arrays, …)."""
        ...

    def snapshot(
        self,
        entry: PoolEntry,
        program: Pubkey,
        data: bytes,
        accounts: dict[Pubkey, AccountData | None],
        tokens: TokenBook,
        clock: ClusterClock,
    ) -> PoolSnapshot:
        """The pool owned by `program` (its swap instructions go to that program)."""
        ...

    def swap_instruction(
        self, snapshot: PoolSnapshot, leg: SwapLeg, user: Pubkey, user_in: Pubkey, user_out: Pubkey
    ) -> Instruction: ...

    def read_swap(
        self, snapshot: PoolSnapshot, ix_data: bytes, accounts: list[Pubkey]
    ) -> DecodedLeg | None: ...

    def error_code(self, custom: int) -> MarketErrorCode: ...


@dataclass
class TokenBook:
    """The venues file's tokens with what the chain says of their mints."""

    mints: dict[str, Mint] = field(default_factory=dict)  # symbol -> mint

    def symbol_of(self, mint: Pubkey) -> str | None:
        return next((symbol for symbol, known in self.mints.items() if known.address == mint), None)

    def require(self, mint: Pubkey, pool: Pubkey) -> str:
        symbol = self.symbol_of(mint)
        if symbol is None:
            raise PoolLoadError(f"pool {pool} trades mint {mint}, which [tokens] does not name")
        return symbol


class ChainPools:
    def __init__(
        self,
        rpc: SolanaRpc,
        venues: VenuesFile,
        adapters: Sequence[VenueAdapter],
        clock: Callable[[], float] = time.monotonic,
        allow_mainnet: bool = False,
    ) -> None:
        self._rpc, self._venues, self._clock = rpc, venues, clock
        self._allow_mainnet = allow_mainnet
        self._adapters = {adapter.kind: adapter for adapter in adapters}
        self.tokens = TokenBook()
        self._snapshots: dict[str, PoolSnapshot] = {}  # by pool id
        self._errors: dict[Pubkey, str] = {}
        # Every pool as last decoded: a landed swap is read back even if its pool no
        # longer decodes (disabled since, say).
        self._last_good: dict[Pubkey, PoolSnapshot] = {}
        self._fetched_at = -FRESH_S
        self.clock = ClusterClock(0, 0, 0)
        self._clock_read_at = 0.0
        self._lock = asyncio.Lock()

    # -- loading -----------------------------------------------------------------------

    async def load(self) -> dict[Pubkey, str]:
        """Fetch the mints and every pool; the pools that cannot be traded, with why (the
        others are ready). Raises PoolLoadError when a mint of [tokens] is not a mint."""
        symbols = list(self._venues.tokens)
        found = await self._rpc.accounts([self._venues.tokens[s] for s in symbols])
        for symbol, account in zip(symbols, found, strict=True):
            mint_key = self._venues.tokens[symbol]
            if account is None:
                raise PoolLoadError(f"tokens.{symbol}: no account at {mint_key}")
            try:
                mint = decode_mint(mint_key, account.owner, account.data)
            except NotATokenAccount as error:
                raise PoolLoadError(f"tokens.{symbol}: {error}") from None
            self.tokens.mints[symbol] = mint
            register_token(Token(symbol, str(mint_key), mint.decimals), authoritative=True)
        await self.refresh(force=True, initial=True)
        return dict(self._errors)

    async def refresh(self, force: bool = True, initial: bool = False) -> None:
        """Fetch every pool's accounts in one request (two when new accounts are needed)."""
        async with self._lock:
            if not force and self._clock() - self._fetched_at < FRESH_S:
                return
            entries = self._venues.pools
            wanted: list[Pubkey] = [CLOCK_SYSVAR, *(entry.address for entry in entries)]
            for snapshot in self._snapshots.values():
                wanted.extend(snapshot.accounts)
            wanted = list(dict.fromkeys(wanted))
            fetched = dict(zip(wanted, await self._rpc.accounts(wanted), strict=True))
            missing = self._missing(entries, fetched)
            if missing:
                fetched.update(zip(missing, await self._rpc.accounts(missing), strict=True))
            clock_account = fetched.get(CLOCK_SYSVAR)
            if clock_account is None:
                raise MarketError(MarketErrorCode.RPC_UNAVAILABLE, "the node answered no Clock sysvar")
            self.clock = ClusterClock.decode(clock_account.data)
            self._clock_read_at = self._clock()
            snapshots: dict[str, PoolSnapshot] = {}
            errors: dict[Pubkey, str] = {}
            for entry in entries:
                try:
                    snapshot = self._snapshot(entry, fetched, self.clock)
                except (PoolLoadError, ValueError) as error:
                    errors[entry.address] = str(error)
                    continue
                if snapshot.pool.pool_id in snapshots:
                    errors[entry.address] = (
                        f"a second {entry.venue} pool of {snapshot.pool.pair}: one pool per venue and pair"
                    )
                    continue
                snapshots[snapshot.pool.pool_id] = snapshot
            self._snapshots, self._errors = snapshots, errors
            self._last_good.update({snapshot.entry.address: snapshot for snapshot in snapshots.values()})
            self._fetched_at = self._clock()

    def _missing(
        self, entries: Sequence[PoolEntry], fetched: dict[Pubkey, AccountData | None]
    ) -> list[Pubkey]:
        missing: list[Pubkey] = []
        for entry in entries:
            main = fetched.get(entry.address)
            adapter = self._adapters[entry.venue]
            if main is None or main.owner not in adapter.program_ids:
                continue
            try:
                needed = adapter.dependencies(entry.address, main.data)
            except ValueError:
                continue
            missing.extend(key for key in needed if key not in fetched)
        return list(dict.fromkeys(missing))

    def _snapshot(
        self, entry: PoolEntry, fetched: dict[Pubkey, AccountData | None], clock: ClusterClock
    ) -> PoolSnapshot:
        adapter = self._adapters[entry.venue]
        main = fetched.get(entry.address)
        if main is None:
            raise PoolLoadError(f"no account at {entry.address}")
        if main.owner not in adapter.program_ids:
            programs = ", ".join(sorted(str(p) for p in adapter.program_ids))
            raise PoolLoadError(f"{entry.address} is owned by {main.owner}, not {entry.venue} ({programs})")
        return adapter.snapshot(entry, main.owner, main.data, fetched, self.tokens, clock)

    # -- the pool source (as market/pool_store.py's PoolStore) --------------------------

    async def ensure_genesis(self) -> None:
        """A process's start: the cluster may be traded on, and every pool loads."""
        await check_cluster(self._rpc, self._allow_mainnet)
        errors = await self.load()
        if errors:
            listed = "; ".join(f"{address}: {why}" for address, why in errors.items())
            raise PoolLoadError(
                f"the venues file does not load ({listed}); `order-engine venues check` tells more"
            )

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        await self._fresh_enough()
        pools = [snapshot.pool for snapshot in self._snapshots.values()]
        if token_a is not None:
            pools = [p for p in pools if token_a in (p.base, p.quote)]
        if token_b is not None:
            pools = [p for p in pools if token_b in (p.base, p.quote)]
        return pools

    async def pairs(self) -> frozenset[frozenset[str]]:
        await self._fresh_enough()
        return self.known_pairs() or frozenset()

    async def _fresh_enough(self) -> None:
        """Pool state at most FRESH_S old; while the endpoint fails, what was read up to
        STALE_S ago (a quote on it is checked by the build's simulation anyway)."""
        try:
            await self.refresh(force=False)
        except MarketError as error:
            if error.code not in (MarketErrorCode.RPC_UNAVAILABLE, MarketErrorCode.RATE_LIMITED):
                raise
            if not self._snapshots or self._clock() - self._fetched_at > STALE_S:
                raise

    def known_pairs(self) -> frozenset[frozenset[str]] | None:
        if not self._snapshots:
            return None
        return frozenset(frozenset((s.pool.base, s.pool.quote)) for s in self._snapshots.values())

    async def learn_tokens(self, *symbols: str) -> None:
        """Tokens come from the venues file, all known after `load`."""

    def current_slot(self) -> int:
        """The cluster's slot: as the Clock sysvar said with the pools, plus the 400 ms
        slots since (no request of its own)."""
        return self.clock.slot + int((self._clock() - self._clock_read_at) / SLOT_S)

    def errors(self) -> dict[Pubkey, str]:
        return dict(self._errors)

    def snapshots(self) -> list[PoolSnapshot]:
        return list(self._snapshots.values())

    def pool_addresses(self) -> list[Pubkey]:
        return [entry.address for entry in self._venues.pools]

    # -- what the transaction builder needs ---------------------------------------------

    def mint(self, symbol: str) -> Mint:
        mint = self.tokens.mints.get(symbol)
        if mint is None:
            raise MarketError(MarketErrorCode.INVALID_ORDER, f"{symbol} is not a token of the venues file")
        return mint

    def _by_leg(self, leg: SwapLeg) -> PoolSnapshot:
        for snapshot in self._snapshots.values():
            pool = snapshot.pool
            if pool.dex == leg.dex and {pool.base, pool.quote} == {leg.token_in, leg.token_out}:
                return snapshot
        raise MarketError(
            MarketErrorCode.POOL_NOT_FOUND, f"no {leg.dex} pool of {leg.token_in}/{leg.token_out}"
        )

    def swap_instruction(self, leg: SwapLeg, user: Pubkey, user_in: Pubkey, user_out: Pubkey) -> Instruction:
        snapshot = self._by_leg(leg)
        return self._adapters[snapshot.entry.venue].swap_instruction(snapshot, leg, user, user_in, user_out)

    def error_code(self, error: object, tx: VersionedTransaction | None = None) -> MarketErrorCode:
        """A transaction error as our failure code: a venue program's custom error by its
        table, the runtime's by name."""
        if isinstance(error, TransactionErrorInstructionError):
            inner = error.err
            if isinstance(inner, InstructionErrorCustom):
                program = _program_at(tx, error.index) if tx is not None else None
                adapters = [a for a in self._adapters.values() if program is None or program in a.program_ids]
                for adapter in adapters:
                    code = adapter.error_code(inner.code)
                    if code is not MarketErrorCode.INVALID_ORDER:
                        return code
                if inner.code == 1:  # SPL Token: insufficient funds
                    return MarketErrorCode.INSUFFICIENT_FUNDS
            text = str(inner)
        else:
            text = str(error)
        if "ComputationalBudgetExceeded" in text or "ProgramFailedToComplete" in text:
            return MarketErrorCode.COMPUTE_BUDGET_EXCEEDED
        if "InsufficientFunds" in text or "InsufficientFundsForFee" in text:
            return MarketErrorCode.INSUFFICIENT_FUNDS
        if "BlockhashNotFound" in text:
            return MarketErrorCode.BLOCKHASH_EXPIRED
        if "AccountInUse" in text:
            return MarketErrorCode.ACCOUNT_IN_USE
        return MarketErrorCode.INVALID_ORDER

    # -- reading a landed transaction back ----------------------------------------------

    def fill(self, meta: LandedTransaction, owner: Pubkey) -> dict[str, int]:
        """How the owner's token balances moved, by symbol (post − pre, base units)."""
        moved: dict[str, int] = {}
        for sign, entries in ((-1, meta.pre_token_balances), (1, meta.post_token_balances)):
            for entry in entries:
                symbol = self.tokens.symbol_of(Pubkey.from_string(entry.mint))
                if entry.owner == str(owner) and symbol is not None:
                    moved[symbol] = moved.get(symbol, 0) + sign * entry.amount
        return moved

    def balances_after(self, meta: LandedTransaction, owner: Pubkey) -> dict[str, int]:
        """The owner's balances the transaction left, for the tokens it touched."""
        after: dict[str, int] = {"SOL": meta.post_balances[0]}
        for entry in meta.post_token_balances:
            symbol = self.tokens.symbol_of(Pubkey.from_string(entry.mint))
            if entry.owner == str(owner) and symbol is not None and symbol != "SOL":
                after[symbol] = after.get(symbol, 0) + entry.amount
        return after

    def planned_legs(self, tx: VersionedTransaction) -> tuple[list[LandedLeg], bool]:
        """The transaction's swap instructions as legs, hops numbered in order (amounts as
        the instructions ask them), and whether they are exact-out."""
        message = tx.message
        keys = list(message.account_keys)
        by_address = self._last_good
        legs: list[LandedLeg] = []
        hop, seen_in, exact_out = 0, "", False
        for ix in message.instructions:
            program = keys[ix.program_id_index]
            accounts = [keys[i] for i in ix.accounts]
            snapshot = next((by_address[a] for a in accounts if a in by_address), None)
            if snapshot is None or program not in self._adapters[snapshot.entry.venue].program_ids:
                continue
            decoded = self._adapters[snapshot.entry.venue].read_swap(snapshot, bytes(ix.data), accounts)
            if decoded is None:
                continue
            if legs and decoded.token_in != seen_in and decoded.token_in == legs[-1].token_out:
                hop += 1
            seen_in, exact_out = decoded.token_in, decoded.exact_out
            legs.append(
                LandedLeg(
                    str(snapshot.pool.dex),
                    decoded.amount_in,
                    decoded.amount_out,
                    0 if decoded.exact_out else decoded.amount_out,
                    snapshot.pool.pool_id,
                    decoded.token_in,
                    decoded.token_out,
                    hop,
                )
            )
        if not legs:
            raise MarketError(MarketErrorCode.INVALID_ORDER, "the transaction holds no swap of a known pool")
        return legs, exact_out


def _program_at(tx: VersionedTransaction, index: int) -> Pubkey | None:
    message = tx.message
    instructions = message.instructions
    if index >= len(instructions):
        return None
    return message.account_keys[instructions[index].program_id_index]
