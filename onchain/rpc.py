"""The cluster over standard Solana JSON-RPC: only the methods issue 22 allows, through
solana-py's `AsyncClient`, answering plain values (bytes, ints, our dataclasses) so that
nothing above this module handles RPC response types.

Every failure of the endpoint itself (HTTP 429, 5xx, a timeout, a refused connection, a
JSON-RPC error) becomes a `MarketError` the step's retry policy handles: RATE_LIMITED
for 429, RPC_UNAVAILABLE otherwise, BLOCKHASH_EXPIRED when a node does not know a
transaction's blockhash. None of them ever reaches the API as a 5xx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from contracts.failures import MarketErrorCode
from core.domain import FailureStage
from market.errors import MarketError

T = TypeVar("T")
MAINNET_GENESIS_HASH = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
ACCOUNTS_PER_REQUEST = 100  # getMultipleAccounts' limit
STATUSES_PER_REQUEST = 256  # getSignatureStatuses' limit
# Tries of one request before its fault is the step's (429, 5xx, timeouts are brief).
RPC_TRIES = 3
RPC_BACKOFF_S = 0.25


@dataclass(frozen=True)
class AccountData:
    owner: Pubkey
    lamports: int
    data: bytes


@dataclass(frozen=True)
class SignatureState:
    slot: int
    error: Any | None  # the transaction error as the node reports it (None: succeeded)
    confirmed: bool  # at `confirmed` or `finalized`


@dataclass(frozen=True)
class Simulation:
    error: Any | None
    units_consumed: int
    logs: tuple[str, ...]


@dataclass(frozen=True)
class TokenBalance:
    """One entry of a transaction's pre/post token balances."""

    account_index: int
    mint: str
    owner: str | None
    amount: int


@dataclass(frozen=True)
class LandedTransaction:
    """What `getTransaction` says of a landed transaction (its meta)."""

    slot: int
    error: Any | None
    fee: int
    units_consumed: int
    account_keys: tuple[Pubkey, ...]
    pre_balances: tuple[int, ...]
    post_balances: tuple[int, ...]
    pre_token_balances: tuple[TokenBalance, ...]
    post_token_balances: tuple[TokenBalance, ...]
    logs: tuple[str, ...]


class SolanaRpc:
    """One JSON-RPC endpoint. `close()` when done (one per process, like the DB engine)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        # Transport retries are the steps' (their policies count and back off); here none.
        self._client = AsyncClient(url, commitment=Confirmed, timeout=timeout_s, max_transport_retries=0)
        self._timeout_s = timeout_s
        self.url = url

    async def close(self) -> None:
        await self._client.close()

    async def accounts(self, keys: Sequence[Pubkey]) -> list[AccountData | None]:
        """Many accounts, base64, in as few `getMultipleAccounts` as the limit allows."""
        found: list[AccountData | None] = []
        for start in range(0, len(keys), ACCOUNTS_PER_REQUEST):
            chunk = list(keys[start : start + ACCOUNTS_PER_REQUEST])
            answer = await self._call(partial(self._client.get_multiple_accounts, chunk, encoding="base64"))
            found.extend(
                None if account is None else AccountData(account.owner, account.lamports, bytes(account.data))
                for account in answer.value
            )
        return found

    async def latest_blockhash(self) -> tuple[Hash, int]:
        """A recent blockhash and the last block height at which a transaction on it lands."""
        answer = await self._call(lambda: self._client.get_latest_blockhash())
        return answer.value.blockhash, answer.value.last_valid_block_height

    async def block_height(self) -> int:
        return int((await self._call(lambda: self._client.get_block_height())).value)

    async def prioritization_fees(self, accounts: Sequence[Pubkey]) -> list[int]:
        """Micro-lamports per compute unit paid in recent slots by transactions that
        write these accounts."""
        answer = await self._call(lambda: self._client.get_recent_prioritization_fees(list(accounts)))
        return [int(entry.prioritization_fee) for entry in answer.value]

    async def simulate(self, tx: VersionedTransaction) -> Simulation:
        answer = await self._call(
            lambda: self._client.simulate_transaction(tx, sig_verify=False, replace_recent_blockhash=True)
        )
        value = answer.value
        return Simulation(value.err, int(value.units_consumed or 0), tuple(value.logs or ()))

    async def send(self, raw: bytes) -> str:
        """Send signed bytes as they are (again, if they were sent before: the same
        signature, so a cluster lands them at most once). No preflight: the build
        simulated it, and a re-send must not be refused for what already happened."""
        options = TxOpts(skip_preflight=True, skip_confirmation=True, max_retries=0)
        answer = await self._call(lambda: self._client.send_raw_transaction(raw, opts=options))
        return str(answer.value)

    async def statuses(self, signatures: Sequence[str]) -> list[SignatureState | None]:
        found: list[SignatureState | None] = []
        for start in range(0, len(signatures), STATUSES_PER_REQUEST):
            chunk = [Signature.from_string(s) for s in signatures[start : start + STATUSES_PER_REQUEST]]
            answer = await self._call(
                partial(self._client.get_signature_statuses, chunk, search_transaction_history=True)
            )
            for status in answer.value:
                if status is None:
                    found.append(None)
                    continue
                level = status.confirmation_status
                confirmed = level in (
                    TransactionConfirmationStatus.Confirmed,
                    TransactionConfirmationStatus.Finalized,
                )
                found.append(SignatureState(int(status.slot), status.err, confirmed))
        return found

    async def transaction(self, signature: str) -> LandedTransaction | None:
        answer = await self._call(
            lambda: self._client.get_transaction(
                Signature.from_string(signature), encoding="base64", max_supported_transaction_version=0
            )
        )
        landed = answer.value
        if landed is None or landed.transaction.meta is None:
            return None
        meta = landed.transaction.meta
        wire = landed.transaction.transaction
        if not isinstance(wire, VersionedTransaction):
            raise _unavailable("getTransaction answered an encoding other than base64")
        # v0 without lookup tables (what the engine sends): the static keys are all keys.
        keys = tuple(wire.message.account_keys)
        return LandedTransaction(
            slot=int(landed.slot),
            error=meta.err,
            fee=int(meta.fee),
            units_consumed=int(meta.compute_units_consumed or 0),
            account_keys=keys,
            pre_balances=tuple(int(b) for b in meta.pre_balances),
            post_balances=tuple(int(b) for b in meta.post_balances),
            pre_token_balances=_token_balances(meta.pre_token_balances),
            post_token_balances=_token_balances(meta.post_token_balances),
            logs=tuple(meta.log_messages or ()),
        )

    async def genesis_hash(self) -> str:
        return str((await self._call(lambda: self._client.get_genesis_hash())).value)

    async def _call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        """A request with a deadline, tried again on a fault of the endpoint (every
        method we use is safe to repeat: a re-sent transaction is the same signature);
        the last fault as a MarketError, for the step's own retry policy."""
        for attempt in range(1, RPC_TRIES + 1):
            try:
                return await self._once(request)
            except MarketError as error:
                if attempt == RPC_TRIES or error.code is MarketErrorCode.BLOCKHASH_EXPIRED:
                    raise
                await asyncio.sleep(RPC_BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def _once(self, request: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await asyncio.wait_for(request(), self._timeout_s)
        except TimeoutError:
            raise _unavailable(f"no answer in {self._timeout_s:g} s", self.url) from None
        except SolanaRpcException as error:
            cause = error.__cause__
            if isinstance(cause, httpx2.HTTPStatusError) and cause.response.status_code == 429:
                raise MarketError(
                    MarketErrorCode.RATE_LIMITED, "the RPC endpoint answered 429", stage=FailureStage.LANDING
                ) from None
            if isinstance(cause, httpx2.HTTPStatusError):
                raise _unavailable(f"HTTP {cause.response.status_code}", self.url) from None
            raise _unavailable(type(cause).__name__ if cause else str(error), self.url) from None
        except RPCException as error:
            text = str(error)
            if "BlockhashNotFound" in text or "Blockhash not found" in text:
                raise MarketError(
                    MarketErrorCode.BLOCKHASH_EXPIRED,
                    "the node does not know the transaction's blockhash",
                    stage=FailureStage.LANDING,
                ) from None
            raise _unavailable(f"JSON-RPC error: {text[:200]}", self.url) from None
        except httpx2.HTTPError as error:
            raise _unavailable(type(error).__name__, self.url) from None


class ClusterRefused(RuntimeError):
    """The cluster may not be traded on with these settings."""


async def check_cluster(rpc: SolanaRpc, allow_mainnet: bool) -> str:
    """The cluster's genesis hash; mainnet is refused unless explicitly allowed (real
    money: an operator opts in, a typo in a URL does not)."""
    genesis = await rpc.genesis_hash()
    if genesis == MAINNET_GENESIS_HASH and not allow_mainnet:
        raise ClusterRefused(
            f"{rpc.url} is Solana mainnet (genesis {genesis}); set ORDER_ENGINE_ALLOW_MAINNET=true to trade there"
        )
    return genesis


def _unavailable(why: str, url: str = "") -> MarketError:
    where = f" {url}" if url else ""
    return MarketError(
        MarketErrorCode.RPC_UNAVAILABLE, f"the RPC endpoint{where} failed: {why}", stage=FailureStage.LANDING
    )


def _token_balances(entries: Any) -> tuple[TokenBalance, ...]:
    if not entries:
        return ()
    return tuple(
        TokenBalance(
            int(entry.account_index),
            str(entry.mint),
            None if entry.owner is None else str(entry.owner),
            int(entry.ui_token_amount.amount),
        )
        for entry in entries
    )
