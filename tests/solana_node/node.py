"""A Solana JSON-RPC 2.0 endpoint over HTTP for the tests: exactly the methods the engine
uses (issue 22), answering in the shapes the real RPC gives (agave `rpc/src/rpc.rs`,
`rpc-client-api` response types) so that solana-py's `AsyncClient` and solders parse
them, over a `ChainState`, with faults a test can inject.

    with SolanaNode(load_fixture_accounts(fixtures_directory()), slot_ms=None) as node:
        node.register_program(DLMM_PROGRAM_ID, DlmmProgram(epoch=node.epoch))
        node.fund_sol(owner, 10**9)
        node.mint_tokens_to(owner, mint, 1_000_000)
        client = AsyncClient(node.url, commitment=Confirmed)
        ...                        # send with TxOpts(preflight_commitment=Confirmed)
        node.advance(1)            # the next slot: what was sent lands (processed)
        node.advance(1)            # one more: confirmed (finalized after 32)
        node.fail_next("sendTransaction", 1, "429")
        assert node.calls.count("getTransaction") == 1
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from onchain.spl import TOKEN_PROGRAMS
from tests.solana_node.accounts import (
    Account,
    is_token_account,
    mint_decimals,
    read_token,
    rent_exempt_minimum,
)
from tests.solana_node.programs import VenueProgram
from tests.solana_node.runtime import Execution, TokenBalance, TransactionRejected
from tests.solana_node.state import ChainState, LandedTransaction

CLOCK_SYSVAR = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")
SYSVAR_OWNER = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")

MAINNET_GENESIS_HASH = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
TEST_GENESIS_HASH = "4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY"  # not a public cluster's
API_VERSION = "2.2.7"
CONTROL_PATH = "/control"  # not JSON-RPC: the test's handle on a node in another process
U64_MAX = 2**64 - 1

FaultKind = Literal["429", "500", "timeout", "blockhash_not_found"]
JsonObject = dict[str, Any]


class RpcError(Exception):
    """A JSON-RPC error answer (codes: agave `rpc-client-api/src/custom_error.rs`)."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> JsonObject:
        error: JsonObject = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True)
class _Timeout:
    """Answer nothing for this long (longer than the client waits), then hang up."""

    seconds: float


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, remainder = divmod(number, 58)
        digits = _BASE58[remainder] + digits
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + digits


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def account_json(account: Account | None) -> JsonObject | None:
    if account is None:
        return None
    return {
        "data": [_b64(account.data), "base64"],
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": U64_MAX,
        "space": len(account.data),
    }


def ui_token_amount(amount: int, decimals: int) -> JsonObject:
    whole, fraction = divmod(amount, 10**decimals)
    text = str(whole) + (f".{fraction:0{decimals}d}".rstrip("0") if fraction else "")
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,
        "uiAmountString": text,
    }


def token_balance_json(balance: TokenBalance) -> JsonObject:
    return {
        "accountIndex": balance.account_index,
        "mint": str(balance.mint),
        "owner": str(balance.owner),
        "programId": str(balance.program_id),
        "uiTokenAmount": ui_token_amount(balance.amount, balance.decimals),
    }


def _status(error: object) -> JsonObject:
    return {"Ok": None} if error is None else {"Err": error}


def _config(params: list[Any], index: int) -> JsonObject:
    config = params[index] if len(params) > index else None
    return dict(config) if isinstance(config, dict) else {}


def _pubkey(value: object) -> Pubkey:
    try:
        return Pubkey.from_string(str(value))
    except ValueError as error:
        raise RpcError(-32602, f"Invalid param: {error}") from error


def _encoding(config: JsonObject) -> None:
    if config.get("encoding", "base64") not in ("base64", "base64+zstd"):
        raise RpcError(-32602, "Invalid param: this node answers base64 only")


class SolanaNode:
    def __init__(
        self,
        accounts: Mapping[Pubkey, Account] | None = None,
        *,
        slot_ms: int | None = 400,
        unix_time: int | None = None,
        genesis_hash: str = TEST_GENESIS_HASH,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_fault_seconds: float = 5.0,
    ) -> None:
        """`slot_ms=None`: slots advance only by `advance()` (deterministic tests); the
        clock still counts 400 ms per slot for unix time."""
        self.state = ChainState(accounts, slot_ms=slot_ms or 400, unix_time=unix_time)
        self.genesis_hash = genesis_hash
        self.prioritization_fees: list[int] = [0] * 150
        self.calls: list[str] = []
        # (method, started, answered) in monotonic seconds: which requests overlapped.
        self.timed_calls: list[tuple[str, float, float]] = []
        self.timeout_fault_seconds = timeout_fault_seconds
        self._faults: dict[str, deque[FaultKind]] = {}
        self._slot_ms = slot_ms
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []
        self._methods: dict[str, Callable[[list[Any]], object]] = {
            "getAccountInfo": self._get_account_info,
            "getMultipleAccounts": self._get_multiple_accounts,
            "getLatestBlockhash": self._get_latest_blockhash,
            "getBlockHeight": self._get_block_height,
            "getSlot": self._get_slot,
            "getRecentPrioritizationFees": self._get_recent_prioritization_fees,
            "simulateTransaction": self._simulate_transaction,
            "sendTransaction": self._send_transaction,
            "getSignatureStatuses": self._get_signature_statuses,
            "getTransaction": self._get_transaction,
            "getBalance": self._get_balance,
            "getTokenAccountsByOwner": self._get_token_accounts_by_owner,
            "getTokenAccountBalance": self._get_token_account_balance,
            "getMinimumBalanceForRentExemption": self._get_minimum_balance_for_rent_exemption,
            "getGenesisHash": lambda params: self.genesis_hash,
            "getHealth": lambda params: "ok",
        }

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SolanaNode:
        serving = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="solana-node-http",
            daemon=True,
        )
        serving.start()
        self._threads.append(serving)
        if self._slot_ms:
            ticking = threading.Thread(target=self._tick, name="solana-node-slots", daemon=True)
            ticking.start()
            self._threads.append(ticking)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> SolanaNode:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _tick(self) -> None:
        assert self._slot_ms
        while not self._stopping.wait(self._slot_ms / 1000):
            self.state.advance(1)

    # -- what tests control ------------------------------------------------------------------

    def register_program(self, program_id: Pubkey, program: VenueProgram) -> None:
        with self.state.lock:
            self.state.venues[program_id] = program

    def set_account(self, address: Pubkey, account: Account) -> None:
        self.state.set_account(address, account)

    def account(self, address: Pubkey) -> Account | None:
        with self.state.lock:
            return self.state.accounts.get(address)

    def fund_sol(self, owner: Pubkey, lamports: int) -> None:
        self.state.fund_sol(owner, lamports)

    def mint_tokens_to(self, owner: Pubkey, mint: Pubkey, amount: int) -> Pubkey:
        """Returns the owner's associated token account for `mint`."""
        return self.state.mint_tokens_to(owner, mint, amount)

    def advance(self, slots: int = 1) -> None:
        """Produce `slots` blocks now; each lands what was sent before it."""
        self.state.advance(slots)

    @property
    def program_panics(self) -> list[Exception]:
        """Exceptions venue emulations raised (other than ProgramFailure): each failed its
        instruction with ProgramFailedToComplete; a test can assert there were none."""
        return self.state.program_panics

    @property
    def slot(self) -> int:
        return self.state.slot

    @property
    def block_height(self) -> int:
        return self.state.block_height

    @property
    def epoch(self) -> int:
        """What Token-2022 picks its transfer fee by (slot // 432 000)."""
        return self.state.epoch()

    @property
    def unix_time(self) -> int:
        """The cluster clock a venue program is called with."""
        return self.state.unix_time()

    def hold_landing(self) -> None:
        """Keep what is sent pending (it expires once its blockhash does)."""
        with self.state.lock:
            self.state.holding = True

    def release_landing(self) -> None:
        with self.state.lock:
            self.state.holding = False

    def behind(self, slots: int) -> None:
        """Answer getSlot, getBlockHeight, getLatestBlockhash, getSignatureStatuses and
        getTransaction as of `slots` ago (a lagging node); 0 catches up."""
        with self.state.lock:
            self.state.lag_slots = slots

    def fail_next(self, method: str, count: int = 1, kind: FaultKind = "429") -> None:
        """The next `count` calls of `method` fail: HTTP 429 or 500; "timeout" (the call
        is processed, a sent transaction included, but the answer never comes: the node
        holds it `timeout_fault_seconds`, then hangs up); "blockhash_not_found"
        (sendTransaction's preflight error, simulateTransaction's err)."""
        with self.state.lock:
            self._faults.setdefault(method, deque()).extend([kind] * count)

    def set_prioritization_fees(self, fees: list[int]) -> None:
        """Micro-lamports per compute unit of the most recent slots, oldest first."""
        self.prioritization_fees = list(fees)

    def landed(self, signature: Signature) -> LandedTransaction | None:
        with self.state.lock:
            return self.state.landed.get(signature)

    def control(self, request: object) -> object:
        """What a test drives a node in another process with: POST {"call": name, "args":
        [...]} to CONTROL_PATH (public keys as base58 strings); answers {"result": ...}."""
        calls: dict[str, Callable[..., object]] = {
            "advance": self.advance,
            "hold_landing": self.hold_landing,
            "release_landing": self.release_landing,
            "behind": self.behind,
            "fail_next": self.fail_next,
            "set_prioritization_fees": self.set_prioritization_fees,
            "fund_sol": lambda owner, lamports: self.fund_sol(Pubkey.from_string(owner), lamports),
            "mint_tokens_to": lambda owner, mint, amount: str(
                self.mint_tokens_to(Pubkey.from_string(owner), Pubkey.from_string(mint), amount)
            ),
            "calls": lambda: list(self.calls),
        }
        if not isinstance(request, dict) or request.get("call") not in calls:
            return {"error": f"unknown control call; one of {sorted(calls)}"}
        return {"result": calls[request["call"]](*request.get("args", []))}

    # -- JSON-RPC --------------------------------------------------------------------------

    def handle(self, request: object) -> tuple[object, _Timeout | int | None]:
        """The answer to one HTTP body, and an HTTP-level fault if one was injected."""
        if isinstance(request, list):
            answers = []
            fault: _Timeout | int | None = None
            for item in request:
                answer, item_fault = self._handle_one(item)
                answers.append(answer)
                fault = fault or item_fault
            return answers, fault
        return self._handle_one(request)

    def _take_fault(self, method: str) -> FaultKind | None:
        with self.state.lock:
            queued = self._faults.get(method)
            return queued.popleft() if queued else None

    def _handle_one(self, request: object) -> tuple[JsonObject, _Timeout | int | None]:
        started = time.monotonic()
        try:
            return self._answer_one(request)
        finally:
            method = request.get("method") if isinstance(request, dict) else None
            self.timed_calls.append((str(method), started, time.monotonic()))

    def _answer_one(self, request: object) -> tuple[JsonObject, _Timeout | int | None]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error_answer(None, RpcError(-32600, "Invalid request")), None
        request_id = request.get("id")
        method = request["method"]
        params = request.get("params") or []
        self.calls.append(method)
        fault = self._take_fault(method)
        if fault == "429":
            return _error_answer(request_id, RpcError(429, "Too many requests")), 429
        if fault == "500":
            return _error_answer(request_id, RpcError(-32603, "Internal error")), 500
        try:
            if fault == "blockhash_not_found":
                result = self._blockhash_not_found(method)
            else:
                handler = self._methods.get(method)
                if handler is None:
                    raise RpcError(-32601, "Method not found")
                with self.state.lock:
                    result = handler(list(params))
            answer: JsonObject = {"jsonrpc": "2.0", "result": result, "id": request_id}
        except RpcError as error:
            answer = _error_answer(request_id, error)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            answer = _error_answer(request_id, RpcError(-32602, f"Invalid params: {error!r}"))
        return answer, _Timeout(self.timeout_fault_seconds) if fault == "timeout" else None

    def _blockhash_not_found(self, method: str) -> object:
        failed = self._simulation_value(None, error="BlockhashNotFound")
        if method == "simulateTransaction":
            return self._context(failed)
        raise RpcError(-32002, "Transaction simulation failed: Blockhash not found", failed)

    def _context(self, value: object, commitment: str = "processed") -> JsonObject:
        return {
            "context": {"apiVersion": API_VERSION, "slot": self.state.visible_slot(commitment)},
            "value": value,
        }

    # -- accounts --------------------------------------------------------------------------------

    def _get_account_info(self, params: list[Any]) -> object:
        _encoding(_config(params, 1))
        return self._context(account_json(self._read(_pubkey(params[0]))))

    def _get_multiple_accounts(self, params: list[Any]) -> object:
        _encoding(_config(params, 1))
        keys = [_pubkey(key) for key in params[0]]
        if len(keys) > 100:
            raise RpcError(-32602, "Too many inputs provided; max 100")
        return self._context([account_json(self._read(key)) for key in keys])

    def _read(self, key: Pubkey) -> Account | None:
        """An account as the cluster shows it; the Clock sysvar is made from the clock."""
        if key == CLOCK_SYSVAR:
            slot = self.state.slot
            data = struct.pack(
                "<QqQQq", slot, 0, self.state.epoch(), self.state.epoch(), self.state.unix_time()
            )
            return Account(rent_exempt_minimum(len(data)), SYSVAR_OWNER, data)
        return self.state.accounts.get(key)

    def _get_balance(self, params: list[Any]) -> object:
        account = self.state.accounts.get(_pubkey(params[0]))
        return self._context(account.lamports if account else 0)

    def _get_minimum_balance_for_rent_exemption(self, params: list[Any]) -> object:
        return rent_exempt_minimum(int(params[0]))

    def _get_token_accounts_by_owner(self, params: list[Any]) -> object:
        owner = _pubkey(params[0])
        selector = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        _encoding(_config(params, 2))
        mint = _pubkey(selector["mint"]) if "mint" in selector else None
        program = _pubkey(selector["programId"]) if "programId" in selector else None
        if mint is None and program is None:
            raise RpcError(-32602, "Invalid params: expected a mint or a programId filter")
        if program is not None and program not in TOKEN_PROGRAMS:
            raise RpcError(-32602, f"Invalid param: unrecognized Token program id {program}")
        found = []
        for address, account in self.state.accounts.items():
            if not is_token_account(account):
                continue
            state = read_token(account.data)
            if (
                state.owner == owner
                and (mint is None or state.mint == mint)
                and (program is None or account.owner == program)
            ):
                found.append({"pubkey": str(address), "account": account_json(account)})
        return self._context(found)

    def _get_token_account_balance(self, params: list[Any]) -> object:
        address = _pubkey(params[0])
        account = self.state.accounts.get(address)
        if account is None or not is_token_account(account):
            raise RpcError(-32602, "Invalid param: could not find account")
        state = read_token(account.data)
        mint = self.state.accounts.get(state.mint)
        if mint is None:
            raise RpcError(-32602, "Invalid param: could not find mint")
        return self._context(ui_token_amount(state.amount, mint_decimals(mint)))

    # -- clock -----------------------------------------------------------------------------------

    def _commitment(self, params: list[Any], index: int) -> str:
        return str(_config(params, index).get("commitment", "finalized"))

    def _get_slot(self, params: list[Any]) -> object:
        return self.state.visible_slot(self._commitment(params, 0))

    def _get_block_height(self, params: list[Any]) -> object:
        return self.state.visible_block_height(self._commitment(params, 0))

    def _get_latest_blockhash(self, params: list[Any]) -> object:
        commitment = self._commitment(params, 0)
        blockhash, last_valid = self.state.latest_blockhash(commitment)
        return self._context({"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}, commitment)

    def _get_recent_prioritization_fees(self, params: list[Any]) -> object:
        tip = self.state.visible_slot()
        fees = self.prioritization_fees
        return [
            {"slot": tip - len(fees) + 1 + index, "prioritizationFee": fee} for index, fee in enumerate(fees)
        ]

    # -- transactions ----------------------------------------------------------------------------

    def _transaction(self, params: list[Any], config: JsonObject) -> VersionedTransaction:
        encoding = config.get("encoding", "base58")
        try:
            raw = base64.b64decode(params[0]) if encoding == "base64" else _from_base58(str(params[0]))
            transaction = VersionedTransaction.from_bytes(raw)
        except Exception as error:
            raise RpcError(
                -32602, f"invalid transaction: failed to deserialize VersionedTransaction: {error}"
            ) from error
        message = transaction.message
        if not isinstance(message, Message | MessageV0):
            raise RpcError(-32602, "invalid transaction: only legacy and v0 messages are supported")
        if isinstance(message, MessageV0) and list(message.address_table_lookups):
            raise RpcError(
                -32602, "invalid transaction: address lookup tables are not supported by this node"
            )
        return transaction

    def _simulation_value(
        self,
        execution: Execution | None,
        *,
        error: object = None,
        accounts: list[JsonObject | None] | None = None,
        replacement: JsonObject | None = None,
    ) -> JsonObject:
        value: JsonObject = {
            "err": execution.error if execution is not None else error,
            "logs": list(execution.logs) if execution is not None else [],
            "accounts": accounts,
            "unitsConsumed": execution.units_consumed if execution is not None else 0,
            "returnData": None,
            "innerInstructions": None,
            "replacementBlockhash": replacement,
            "loadedAccountsDataSize": None,
        }
        if execution is not None:
            value |= {
                "fee": execution.fee,
                "preBalances": list(execution.pre_balances),
                "postBalances": list(execution.post_balances),
                "preTokenBalances": [token_balance_json(b) for b in execution.pre_token_balances],
                "postTokenBalances": [token_balance_json(b) for b in execution.post_token_balances],
                "loadedAddresses": {"writable": [], "readonly": []},
            }
        return value

    def _simulate(
        self,
        transaction: VersionedTransaction,
        *,
        commitment: str,
        replace_blockhash: bool,
        wanted: list[Pubkey] | None,
    ) -> JsonObject:
        """In the bank at `commitment` (what it knows of blockhashes and landed
        signatures; the accounts are the tip's, a simplification)."""
        replacement = None
        bank_slot = self.state.visible_slot(commitment)
        if replace_blockhash:
            blockhash, last_valid = self.state.latest_blockhash(commitment)
            replacement = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}
        elif not self.state.blockhash_is_valid(transaction.message.recent_blockhash, bank_slot):
            return self._simulation_value(None, error="BlockhashNotFound")
        if self.state.landed_at(transaction.signatures[0], commitment) is not None:
            return self._simulation_value(None, error="AlreadyProcessed")
        try:
            execution = self.state.execute(transaction)
        except TransactionRejected as rejected:
            return self._simulation_value(None, error=rejected.error)
        accounts = None
        if wanted is not None:
            accounts = [account_json(execution.account(self.state.accounts, key)) for key in wanted]
        return self._simulation_value(execution, accounts=accounts, replacement=replacement)

    def _simulate_transaction(self, params: list[Any]) -> object:
        config = _config(params, 1)
        transaction = self._transaction(params, config)
        replace_blockhash = bool(config.get("replaceRecentBlockhash"))
        if config.get("sigVerify") and replace_blockhash:
            raise RpcError(-32602, "Invalid params: sigVerify may not be used with replaceRecentBlockhash")
        if config.get("sigVerify"):
            self._verify_signatures(transaction)
        wanted_config = config.get("accounts")
        wanted = None
        if isinstance(wanted_config, dict):
            _encoding(wanted_config)
            wanted = [_pubkey(key) for key in wanted_config.get("addresses", [])]
        commitment = str(config.get("commitment", "finalized"))
        value = self._simulate(
            transaction, commitment=commitment, replace_blockhash=replace_blockhash, wanted=wanted
        )
        return self._context(value, commitment)

    def _verify_signatures(self, transaction: VersionedTransaction) -> None:
        if not all(transaction.verify_with_results()):
            raise RpcError(-32003, "Transaction signature verification failure")

    def _send_transaction(self, params: list[Any]) -> object:
        """Signatures are always verified; preflight (unless skipped) simulates in the bank
        at `preflightCommitment` (solana-py's default: finalized, so a blockhash fetched at
        a lower commitment is not found there, as on a real cluster) and refuses a failing,
        expired or already landed transaction with the real -32002 error. With
        preflight skipped, an expired one is accepted and silently never lands, as on a
        real cluster."""
        config = _config(params, 1)
        transaction = self._transaction(params, config)
        self._verify_signatures(transaction)
        if not config.get("skipPreflight"):
            commitment = str(config.get("preflightCommitment", "finalized"))
            value = self._simulate(transaction, commitment=commitment, replace_blockhash=False, wanted=None)
            if value["err"] is not None:
                raise RpcError(-32002, f"Transaction simulation failed: {_describe(value['err'])}", value)
        return str(self.state.receive(transaction))

    def _get_signature_statuses(self, params: list[Any]) -> object:
        statuses = []
        for text in params[0]:
            status = self.state.status(Signature.from_string(text))
            statuses.append(
                None
                if status is None
                else {
                    "slot": status.slot,
                    "confirmations": status.confirmations,
                    "err": status.error,
                    "status": _status(status.error),
                    "confirmationStatus": status.confirmation_status,
                }
            )
        return self._context(statuses)

    def _get_transaction(self, params: list[Any]) -> object:
        config = _config(params, 1)
        commitment = str(config.get("commitment", "finalized"))
        if commitment == "processed":
            raise RpcError(-32602, "Method does not support commitment below `confirmed`")
        landed = self.state.landed_at(Signature.from_string(str(params[0])), commitment)
        if landed is None:
            return None
        message = landed.transaction.message
        is_v0 = isinstance(message, MessageV0)
        if is_v0 and config.get("maxSupportedTransactionVersion") is None:
            raise RpcError(
                -32015,
                "Transaction version (0) is not supported by the requesting client. Please try the request again "
                'with the following configuration parameter: "maxSupportedTransactionVersion": 0',
            )
        encoding = config.get("encoding", "json")
        if encoding == "base64":
            encoded: object = [_b64(bytes(landed.transaction)), "base64"]
        elif encoding == "json":
            encoded = _transaction_json(landed.transaction)
        else:
            raise RpcError(-32602, f"Invalid param: encoding {encoding} is not supported by this node")
        execution = landed.execution
        return {
            "slot": landed.slot,
            "blockTime": landed.block_time,
            "version": 0 if is_v0 else "legacy",
            "transaction": encoded,
            "meta": {
                "err": execution.error,
                "status": _status(execution.error),
                "fee": execution.fee,
                "preBalances": list(execution.pre_balances),
                "postBalances": list(execution.post_balances),
                "innerInstructions": [],
                "logMessages": list(execution.logs),
                "preTokenBalances": [token_balance_json(b) for b in execution.pre_token_balances],
                "postTokenBalances": [token_balance_json(b) for b in execution.post_token_balances],
                "rewards": [],
                "loadedAddresses": {"writable": [], "readonly": []},
                "computeUnitsConsumed": execution.units_consumed,
            },
        }


def _error_answer(request_id: object, error: RpcError) -> JsonObject:
    return {"jsonrpc": "2.0", "error": error.body(), "id": request_id}


def _describe(error: object) -> str:
    if error == "BlockhashNotFound":
        return "Blockhash not found"
    if error == "AlreadyProcessed":
        return "This transaction has already been processed"
    if isinstance(error, dict) and "InstructionError" in error:
        index, inner = error["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            return f"Error processing Instruction {index}: custom program error: {inner['Custom']:#x}"
        return f"Error processing Instruction {index}: {inner}"
    return str(error)


def _transaction_json(transaction: VersionedTransaction) -> JsonObject:
    message = transaction.message
    header = message.header
    keys = list(message.account_keys)
    body: JsonObject = {
        "header": {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        },
        "accountKeys": [str(key) for key in keys],
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": [
            {
                "programIdIndex": instruction.program_id_index,
                "accounts": list(bytes(instruction.accounts)),
                "data": base58(bytes(instruction.data)),
                "stackHeight": None,
            }
            for instruction in message.instructions
        ],
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = []
    return {"signatures": [str(signature) for signature in transaction.signatures], "message": body}


def _from_base58(text: str) -> bytes:
    number = 0
    for character in text:
        number = number * 58 + _BASE58.index(character)
    leading = len(text) - len(text.lstrip("1"))
    return b"\0" * leading + number.to_bytes((number.bit_length() + 7) // 8, "big")


def _handler_for(node: SolanaNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                request = json.loads(raw)
            except ValueError:
                answer: object = _error_answer(None, RpcError(-32700, "Parse error"))
                fault: _Timeout | int | None = None
            else:
                if self.path == CONTROL_PATH:
                    answer, fault = node.control(request), None
                else:
                    answer, fault = node.handle(request)
            if isinstance(fault, _Timeout):
                node._stopping.wait(fault.seconds)
                self.close_connection = True
                return
            body = json.dumps(answer).encode()
            self.send_response(fault or 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read `calls`
            return

    return Handler


__all__ = ["MAINNET_GENESIS_HASH", "TEST_GENESIS_HASH", "RpcError", "SolanaNode", "base58"]
