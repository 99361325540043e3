"""Build, send and confirm an order's swap on a real cluster, never landing two.

The same four steps as the simulated chain (activities/execution.py's `SwapChain`):

- build: a v0 transaction signed by the order's owner: compute-unit limit and price,
  the output's token account created if missing (idempotent), native SOL wrapped and
  unwrapped, one swap instruction per leg, an optional tip; the limit is the simulated
  consumption plus a margin, the price from `getRecentPrioritizationFees` at the order's
  level (raised after each attempt that did not land).
- submit: **never two landed swaps for one order.** Every signed transaction is
  recorded (signature, bytes, `lastValidBlockHeight`) before it is first sent. Before
  sending, the step asks the chain about every signature the order has sent: if one
  landed, that is the order's transaction; if one may still land (its
  `lastValidBlockHeight` not passed), its bytes are sent again instead of the new
  ones. So at any moment at most one transaction of the order can land, whatever
  crashed, timed out or lagged (docs/decisions/0012-exactly-once-on-a-real-chain.md).
- confirm: polls the statuses of all the order's signatures at `confirmed`, re-sending
  the live one's bytes, until one lands (the fill report comes from `getTransaction`'s
  meta) or all have expired (TRANSACTION_EXPIRED: the workflow builds anew).
- close: before an order is recorded FAILED, its landed transaction if any; it waits
  (raising, so the step retries) while one may still land, then releases the
  reservation so that no new one can be sent.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError
from spl.token.instructions import close_account, create_idempotent_associated_token_account, sync_native
from spl.token.models import CloseAccountParams, SyncNativeParams
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from contracts.failures import MarketErrorCode
from contracts.landing import SIGNATURE_LAMPORTS, Fees, LandingReport, LandingRequest
from core.domain import FailureStage, ReservationState
from market.chain import SignedTransaction, order_spender
from market.errors import MarketError
from market.fees import compute_unit_price
from market.ledger import Landed, LandedLeg, TransactionLedger, record_executed, record_failed
from market.transactions import ComputeBudget, SwapLeg
from onchain.fees import ChainFees
from onchain.pools import ChainPools
from onchain.rpc import LandedTransaction, SolanaRpc
from onchain.spl import Mint, associated_token_address
from storage.models import FailedTransaction, SentTransaction, utcnow
from wallets import repository as wallet_repository
from wallets.service import Wallets

BLOCKHASH_VALID_BLOCKS = 150
MAX_COMPUTE_UNITS = 1_400_000
# The limit asks this much more than the simulation consumed (pools move between the
# simulation and the landing; a DLMM swap may cross one bin more).
COMPUTE_MARGIN = 1.2
COMPUTE_HEADROOM = 5_000
POLL_S = 0.4  # one slot
RESEND_S = 2.0
SIMULATED_REMEMBERED = 10_000
PACKET_BYTES = 1_232  # the most a transaction may take on the wire
# The endpoint's passing faults, which confirm polls through.
TRANSIENT = frozenset({MarketErrorCode.RPC_UNAVAILABLE, MarketErrorCode.RATE_LIMITED})


@dataclass(frozen=True)
class SentRecord:
    signature: str
    raw: bytes
    last_valid_block_height: int
    sent_slot: int


class RpcChain:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rpc: SolanaRpc,
        pools: ChainPools,
        wallets: Wallets,
        ledger: TransactionLedger,
        fees: ChainFees,
        tip_accounts: Sequence[Pubkey] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions, self._rpc, self._pools, self._wallets = sessions, rpc, pools, wallets
        self._ledger, self._fees, self._tips = ledger, fees, tuple(tip_accounts)
        self._sleep, self._clock = sleep, clock
        # Signatures built here, with their simulation's failure (None: it passed).
        self._simulated: OrderedDict[str, MarketError | None] = OrderedDict()

    # -- build ---------------------------------------------------------------------

    async def build(
        self,
        *,
        order_id: str,
        idempotency_key: str,
        token_in: str,
        token_out: str,
        legs: list[SwapLeg],
        landing: LandingRequest | None = None,
        escalation: int = 0,
    ) -> SignedTransaction:
        landing = landing or LandingRequest()
        if landing.tip_lamports > 0 and not self._tips:
            raise MarketError(
                MarketErrorCode.INVALID_ORDER,
                "a tip was asked for, but the venues file names no [landing] tip_accounts",
            )
        owner = await order_spender(
            self._sessions,
            self._wallets,
            order_id,
            token_in,
            sum(leg.amount_in for leg in legs if leg.hop == 0),
        )
        signer = await self._wallets.keypair(owner)
        (blockhash, last_valid), levels, _ = await asyncio.gather(
            self._rpc.latest_blockhash(),
            self._fees.levels(),
            self._pools.refresh(force=False),  # as the plan saw them (failures force a refresh)
        )
        swaps = self._swap_instructions(signer.pubkey(), token_in, token_out, legs)
        tip = self._tip(signer.pubkey(), landing.tip_lamports, order_id)
        probe = _signed(signer, blockhash, MAX_COMPUTE_UNITS, 0, swaps + tip)
        size = len(bytes(probe))
        if size > PACKET_BYTES:  # no lookup tables: every account is in the message
            raise MarketError(
                MarketErrorCode.INVALID_ORDER,
                f"the route needs a {size}-byte transaction, one holds {PACKET_BYTES}: "
                "ask for fewer hops (max_hops) or venues (dexes)",
            )
        simulation = await self._rpc.simulate(probe)
        failure: MarketError | None = None
        if simulation.error is None:
            limit = min(
                MAX_COMPUTE_UNITS, math.ceil(simulation.units_consumed * COMPUTE_MARGIN) + COMPUTE_HEADROOM
            )
        else:
            # Not this step's failure: the submit's, which counts as one of the order's
            # attempts (a build that failed here would re-quote without end).
            await self._pools.refresh()  # the next plan must see the pools as they are now
            failure = MarketError(
                self._pools.error_code(simulation.error, probe),
                f"simulation: {_describe(simulation.error)}",
                stage=FailureStage.SIMULATION,
            )
            limit = MAX_COMPUTE_UNITS  # nothing measured: sent anyway only if the order said so
        price = compute_unit_price(landing, levels, limit, escalation)
        tx = _signed(signer, blockhash, limit, price, swaps + tip)
        self._simulated[str(tx.signatures[0])] = failure
        while len(self._simulated) > SIMULATED_REMEMBERED:
            self._simulated.popitem(last=False)
        return SignedTransaction(
            str(tx.signatures[0]),
            bytes(tx),
            idempotency_key,
            # On a real chain the validity is by block height: last valid = this + 150.
            last_valid - BLOCKHASH_VALID_BLOCKS,
            ComputeBudget(limit, price, landing.tip_lamports),
        )

    def _swap_instructions(
        self, user: Pubkey, token_in: str, token_out: str, legs: list[SwapLeg]
    ) -> list[Instruction]:
        """Token plumbing around the swaps: every token account a leg writes exists (made
        idempotently), native SOL in is wrapped first and out unwrapped last."""
        accounts: dict[str, Pubkey] = {}
        plumbing: list[Instruction] = []
        for symbol in dict.fromkeys([leg.token_in for leg in legs] + [leg.token_out for leg in legs]):
            mint = self._pools.mint(symbol)
            accounts[symbol] = associated_token_address(user, mint.address, mint.program)
            plumbing.append(
                create_idempotent_associated_token_account(user, user, mint.address, mint.program)
            )
        wrapped = sum(leg.amount_in for leg in legs if leg.hop == 0 and leg.token_in == "SOL")
        if wrapped:
            plumbing.append(
                transfer(TransferParams(from_pubkey=user, to_pubkey=accounts["SOL"], lamports=wrapped))
            )
            plumbing.append(
                sync_native(
                    SyncNativeParams(program_id=self._pools.mint("SOL").program, account=accounts["SOL"])
                )
            )
        swaps = [
            self._pools.swap_instruction(leg, user, accounts[leg.token_in], accounts[leg.token_out])
            for leg in intermediate_minimums(legs)
        ]
        closing: list[Instruction] = []
        if "SOL" in accounts:  # what is left of wrapped SOL (and SOL bought) back to lamports
            closing.append(
                close_account(
                    CloseAccountParams(
                        program_id=self._pools.mint("SOL").program,
                        account=accounts["SOL"],
                        dest=user,
                        owner=user,
                    )
                )
            )
        return plumbing + swaps + closing

    def _tip(self, user: Pubkey, lamports: int, order_id: str) -> list[Instruction]:
        if lamports <= 0:
            return []
        # One tip account per order, spread over the listed ones (they exist to spread load).
        account = self._tips[sum(order_id.encode()) % len(self._tips)]
        return [transfer(TransferParams(from_pubkey=user, to_pubkey=account, lamports=lamports))]

    # -- submit ----------------------------------------------------------------------

    async def submit(self, tx: SignedTransaction, simulate: bool = False) -> str:
        order_id = _order_of(tx)
        sent = await self._sent(order_id)
        if sent:
            # The height first: a transaction that lands between the two answers is then
            # seen landed, never taken for expired.
            height = await self._rpc.block_height()
            statuses = await self._rpc.statuses([s.signature for s in sent])
            for record, status in zip(sent, statuses, strict=True):
                if status is not None and status.error is None:
                    return record.signature  # it landed: confirm reports it
            live = [
                record
                for record, status in zip(sent, statuses, strict=True)
                if status is None and height <= record.last_valid_block_height
            ]
            if live and tx.signature not in {record.signature for record in live}:
                # One of its transactions may still land: that one, never a second.
                await self._rpc.send(live[-1].raw)
                return live[-1].signature
        # Built here a moment ago from a simulation (the compute-unit limit's): that was
        # its simulation before sending. Built elsewhere (a crash between): again.
        if simulate and tx.signature in self._simulated:
            failure = self._simulated[tx.signature]
            if failure is not None:
                raise failure
        elif simulate:
            simulation = await self._rpc.simulate(VersionedTransaction.from_bytes(tx.raw))
            if simulation.error is not None:
                raise MarketError(
                    self._pools.error_code(simulation.error, VersionedTransaction.from_bytes(tx.raw)),
                    f"simulation: {_describe(simulation.error)}",
                    stage=FailureStage.SIMULATION,
                )
        await self._record_sending(order_id, tx, {record.signature for record in sent})
        await self._rpc.send(tx.raw)
        return tx.signature

    async def _record_sending(self, order_id: str, tx: SignedTransaction, examined: set[str]) -> None:
        """Recorded before it is first sent, in the transaction that checks the order may
        still spend and that no other step sent one since this one asked the chain
        (both hold the reservation's lock): a `close` that released the reservation
        first makes this refuse, and one that comes after sees this record."""
        async with self._sessions() as session, session.begin():
            held = await wallet_repository.reservation(session, order_id, lock=True)
            if held is not None and held.state is not ReservationState.HELD:
                raise MarketError(
                    MarketErrorCode.ORDER_CLOSED, f"{order_id} ended; its reservation was {held.state}"
                )
            if await _signatures(session, order_id) - examined - {tx.signature}:
                raise MarketError(
                    MarketErrorCode.RPC_UNAVAILABLE,
                    "another step sent a transaction of this order meanwhile: asking the chain again",
                )
            if await session.get(SentTransaction, tx.signature) is None:
                session.add(
                    SentTransaction(
                        signature=tx.signature,
                        order_id=order_id,
                        raw=base64.b64encode(tx.raw).decode(),
                        last_valid_block_height=tx.last_valid_slot,
                        sent_slot=self._pools.current_slot(),
                    )
                )

    # -- confirm -----------------------------------------------------------------------

    async def confirm(self, tx: SignedTransaction) -> Landed:
        order_id = _order_of(tx)
        earlier = await self._ledger.find(tx.idempotency_key)
        if earlier is not None:
            return earlier
        resent = self._clock()
        await self._sleep(POLL_S)  # nothing lands in the slot it was sent in
        while True:
            sent = await self._sent(order_id)
            if not sent:
                raise MarketError(
                    MarketErrorCode.TRANSACTION_DROPPED,
                    "no transaction of the order was sent",
                    stage=FailureStage.LANDING,
                )
            try:
                outcome = await self._outcome(order_id, tx.idempotency_key, sent)
                if outcome is not None:
                    return outcome
                # Only the newest can still land: another is sent only once the ones
                # before it have expired or failed.
                latest = sent[-1]
                if (
                    await self._rpc.block_height() > latest.last_valid_block_height
                    and not await self._landing(latest)
                ):
                    raise MarketError(
                        MarketErrorCode.TRANSACTION_EXPIRED,
                        f"not landed by block height {latest.last_valid_block_height}; it never can",
                        stage=FailureStage.LANDING,
                    )
                if self._clock() - resent >= RESEND_S:
                    resent = self._clock()
                    await self._rpc.send(latest.raw)
            except MarketError as error:
                # The endpoint's passing faults: keep polling (the step's own timeout
                # bounds the wait); anything else is the step's outcome.
                if error.code not in TRANSIENT:
                    raise
            await self._sleep(POLL_S)

    async def _landing(self, record: SentRecord) -> bool:
        """Landed in a block not yet confirmed (processed): it will be decided, not expire."""
        (status,) = await self._rpc.statuses([record.signature])
        return status is not None

    async def _outcome(self, order_id: str, key: str, sent: list[SentRecord]) -> Landed | None:
        """The order's landed transaction (recorded once), or the failure of its newest
        one if that landed and failed (charged once, raised); None while undecided. The
        newest is asked with getTransaction (one round trip when it has landed); older
        ones, sent before a crash or an expiry, by their statuses."""
        latest = sent[-1]
        meta = await self._rpc.transaction(latest.signature)
        if meta is not None:
            if meta.error is None:
                return await self._landed(order_id, key, latest, meta)
            await self._failed(order_id, key, latest, meta)
        if len(sent) > 1:
            older = sent[:-1]
            for record, status in zip(
                older, await self._rpc.statuses([s.signature for s in older]), strict=True
            ):
                if status is not None and status.confirmed and status.error is None:
                    return await self._landed(order_id, key, record)
        return None

    async def _landed(
        self, order_id: str, key: str, record: SentRecord, meta: LandedTransaction | None = None
    ) -> Landed:
        meta = meta or await self._transaction(record.signature)
        swap = VersionedTransaction.from_bytes(record.raw)
        budget = _budget_of(swap)
        tip = _tip_of(swap, self._tips)
        owner_key = meta.account_keys[0]
        filled = self._pools.fill(meta, owner_key)
        rent = _rent_deposited(meta, owner_key)
        network = SIGNATURE_LAMPORTS * len(swap.signatures)
        fees = Fees(network, max(meta.fee - network, 0), tip, rent)
        sol_delta = meta.post_balances[0] - meta.pre_balances[0]
        # Native SOL moves in lamports (wrapped and unwrapped in the transaction): what is
        # not the fee, the tip or rent is the swap's.
        swapped_sol = (
            sol_delta + meta.fee + tip + rent - _wrapped_before(meta, owner_key, self._pools.mint("SOL"))
        )
        legs, exact_out = self._pools.planned_legs(swap)
        token_in, token_out = legs[0].token_in, legs[-1].token_out
        amount_in = -swapped_sol if token_in == "SOL" else -filled.get(token_in, 0)
        amount_out = swapped_sol if token_out == "SOL" else filled.get(token_out, 0)
        report = LandingReport(
            fees,
            budget.compute_unit_limit,
            meta.units_consumed,
            budget.micro_lamports_per_cu,
            record.sent_slot,
            meta.slot,
        )
        landed = Landed(
            record.signature,
            amount_in,
            amount_out,
            meta.slot,
            filled_legs(legs, amount_in, amount_out, filled, exact_out),
            report,
        )
        balances_after = self._pools.balances_after(meta, owner_key)
        try:
            async with self._sessions() as session, session.begin():
                held = await wallet_repository.reservation(session, order_id, lock=True)
                if held is not None and held.state is ReservationState.HELD:
                    await wallet_repository.settle_on_chain(
                        session, held, amount_in, fees.total_lamports + rent, balances_after
                    )
                record_executed(
                    session,
                    landed,
                    idempotency_key=key,
                    order_id=order_id,
                    dex=legs[0].dex if len({leg.dex for leg in legs}) == 1 else "split",
                    token_in=token_in,
                    token_out=token_out,
                    at=utcnow(),
                )
        except IntegrityError:
            found = await self._ledger.find(key)  # recorded a moment ago by another step
            if found is None:
                raise
            return found
        return landed

    async def _failed(self, order_id: str, key: str, record: SentRecord, meta: LandedTransaction) -> None:
        await self._pools.refresh()  # it failed on the pools as they are now: re-quote on them
        code = self._pools.error_code(meta.error, VersionedTransaction.from_bytes(record.raw))
        async with self._sessions() as session, session.begin():
            held = await wallet_repository.reservation(session, order_id, lock=True)
            first = await record_failed(
                session,
                FailedTransaction(
                    signature=record.signature,
                    idempotency_key=key,
                    order_id=order_id,
                    owner=held.owner if held is not None else "",
                    code=str(code),
                    reason=_describe(meta.error),
                    fee_lamports=meta.fee,
                    slot=meta.slot,
                    at=utcnow(),
                ),
            )
            if first and held is not None:
                await wallet_repository.charge_fee_on_chain(session, held, meta.fee)
        raise MarketError(
            code,
            f"landed and failed: {_describe(meta.error)}",
            stage=FailureStage.CHAIN,
            fee_lamports=meta.fee,
        )

    async def _transaction(self, signature: str) -> LandedTransaction:
        for _ in range(10):  # a node may answer the status a moment before the transaction
            meta = await self._rpc.transaction(signature)
            if meta is not None:
                return meta
            await self._sleep(POLL_S)
        raise MarketError(
            MarketErrorCode.RPC_UNAVAILABLE, f"{signature} landed but getTransaction does not know it yet"
        )

    # -- close -------------------------------------------------------------------------

    async def find_landed(self, idempotency_key: str) -> Landed | None:
        return await self._ledger.find(idempotency_key)

    async def close(self, order_id: str, idempotency_key: str) -> Landed | None:
        earlier = await self._ledger.find(idempotency_key)
        if earlier is not None:
            return earlier
        sent = await self._sent(order_id)
        if sent:
            height = await self._rpc.block_height()  # before the statuses, as in submit
            statuses = await self._rpc.statuses([s.signature for s in sent])
            for record, status in zip(sent, statuses, strict=True):
                if status is not None and status.error is None:
                    if not status.confirmed:
                        raise MarketError(MarketErrorCode.RPC_UNAVAILABLE, f"{record.signature} is landing")
                    return await self._landed(order_id, idempotency_key, record)
            waiting = [
                r
                for r, s in zip(sent, statuses, strict=True)
                if s is None and height <= r.last_valid_block_height
            ]
            if waiting:
                # The step retries until it has expired: until then it may still land.
                raise MarketError(
                    MarketErrorCode.RPC_UNAVAILABLE,
                    f"{waiting[-1].signature} may land until block height {waiting[-1].last_valid_block_height}",
                )
        async with self._sessions() as session, session.begin():
            held = await wallet_repository.reservation(session, order_id, lock=True)
            if await _signatures(session, order_id) != {record.signature for record in sent}:
                # A step cut off from Temporal sent one since: ask the chain about it first.
                raise MarketError(
                    MarketErrorCode.RPC_UNAVAILABLE, f"{order_id} sent another transaction meanwhile"
                )
            if held is not None and held.state is ReservationState.HELD:
                await wallet_repository.release(session, order_id)
        return None

    async def _sent(self, order_id: str) -> list[SentRecord]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(SentTransaction)
                    .where(col(SentTransaction.order_id) == order_id)
                    # Newest last by validity, not by a worker's wall clock.
                    .order_by(col(SentTransaction.last_valid_block_height), col(SentTransaction.created_at))
                )
            ).scalars()
            return [
                SentRecord(
                    row.signature, base64.b64decode(row.raw), row.last_valid_block_height, row.sent_slot
                )
                for row in rows
            ]


async def _signatures(session: AsyncSession, order_id: str) -> set[str]:
    rows = await session.execute(
        select(col(SentTransaction.signature)).where(col(SentTransaction.order_id) == order_id)
    )
    return set(rows.scalars())


def _wrapped_before(meta: LandedTransaction, owner: Pubkey, native: Mint) -> int:
    """Lamports the owner's wrapped-SOL account held before the transaction (its rent and
    any wrapped SOL): closing it at the end gives them back, and they are not the swap's."""
    account = associated_token_address(owner, native.address, native.program)
    if account not in meta.account_keys:
        return 0
    return meta.pre_balances[meta.account_keys.index(account)]


def intermediate_minimums(legs: list[SwapLeg]) -> list[SwapLeg]:
    """Exact-in multi-hop on a real chain: a later hop's instructions carry fixed
    inputs (the planned intermediate amounts), so each earlier hop must pay out at least
    what the next one takes — its minimum, shared by input — or the venue refuses it on
    slippage (the fee only; the order re-quotes). What an earlier hop pays beyond that
    stays in the owner's account of the intermediate token."""
    last = max((leg.hop for leg in legs), default=0)
    if last == 0 or any(leg.exact_out for leg in legs):
        return legs
    total_in = {hop: sum(leg.amount_in for leg in legs if leg.hop == hop) for hop in range(last + 1)}
    return [
        leg
        if leg.hop == last
        else replace(
            leg, min_amount_out=-(-total_in[leg.hop + 1] * leg.amount_in // max(total_in[leg.hop], 1))
        )
        for leg in legs
    ]


def _order_of(tx: SignedTransaction) -> str:
    return tx.idempotency_key.split(":")[0]


def _signed(
    signer: Keypair, blockhash: Hash, limit: int, price: int, body: list[Instruction]
) -> VersionedTransaction:
    instructions = [set_compute_unit_limit(limit), set_compute_unit_price(price), *body]
    message = MessageV0.try_compile(signer.pubkey(), instructions, [], blockhash)
    return VersionedTransaction(message, [signer])


def _budget_of(tx: VersionedTransaction) -> ComputeBudget:
    """The limit and price the transaction asked (its ComputeBudget instructions)."""
    message = tx.message
    limit, price = 200_000, 0
    keys = message.account_keys
    for ix in message.instructions:
        if str(keys[ix.program_id_index]) != "ComputeBudget111111111111111111111111111111":
            continue
        data = bytes(ix.data)
        if data[0] == 2:
            limit = int.from_bytes(data[1:5], "little")
        elif data[0] == 3:
            price = int.from_bytes(data[1:9], "little")
    return ComputeBudget(limit, price)


def _tip_of(tx: VersionedTransaction, tip_accounts: Sequence[Pubkey]) -> int:
    """Lamports the transaction transfers to a tip account."""
    message = tx.message
    keys = message.account_keys
    tips = set(tip_accounts)
    total = 0
    for ix in message.instructions:
        if str(keys[ix.program_id_index]) != "11111111111111111111111111111111":
            continue
        data = bytes(ix.data)
        if len(data) == 12 and int.from_bytes(data[:4], "little") == 2 and keys[ix.accounts[1]] in tips:
            total += int.from_bytes(data[4:12], "little")
    return total


def _rent_deposited(meta: LandedTransaction, owner: Pubkey) -> int:
    """Lamports put into token accounts of the owner's that the transaction created and
    left open (an account closed in it gave its rent back)."""
    created = 0
    owned = {entry.account_index for entry in meta.post_token_balances if entry.owner == str(owner)}
    for index in owned:
        if meta.pre_balances[index] == 0 and meta.post_balances[index] > 0:
            created += meta.post_balances[index]
    return created


def filled_legs(
    legs: list[LandedLeg], amount_in: int, amount_out: int, kept: dict[str, int], exact_out: bool
) -> tuple[LandedLeg, ...]:
    """Per-leg fills from what the transaction moved (the meta reports balances, not
    instructions). Each hop's total: the first takes `amount_in`, the last pays
    `amount_out`; between two hops, the intermediate token the owner `kept` is what the
    earlier paid beyond what the later took. Exact-in: a later hop's inputs are its
    instructions'; exact-out: an earlier hop's outputs are. Within a hop the total is
    shared in the instructions' proportions, the last leg taking what rounding leaves."""
    last = max(leg.hop for leg in legs)
    hops = [[leg for leg in legs if leg.hop == hop] for hop in range(last + 1)]
    ins = {0: amount_in}
    outs = {last: amount_out}
    for hop in range(last):
        surplus = kept.get(hops[hop][0].token_out, 0)
        if exact_out:
            outs[hop] = sum(leg.amount_out for leg in hops[hop])
            ins[hop + 1] = outs[hop] - surplus
        else:
            ins[hop + 1] = sum(leg.amount_in for leg in hops[hop + 1])
            outs[hop] = ins[hop + 1] + surplus
    filled: dict[int, tuple[int, int]] = {}
    for hop, group in enumerate(hops):
        for leg, amount_in_share, amount_out_share in zip(
            group,
            _shares(ins[hop], [leg.amount_in for leg in group]),
            _shares(outs[hop], [leg.amount_out for leg in group]),
            strict=True,
        ):
            filled[id(leg)] = (amount_in_share, amount_out_share)
    return tuple(
        LandedLeg(
            leg.dex,
            filled[id(leg)][0],
            filled[id(leg)][1],
            leg.min_amount_out,
            leg.pool,
            leg.token_in,
            leg.token_out,
            leg.hop,
        )
        for leg in legs
    )


def _shares(total: int, weights: list[int]) -> list[int]:
    weight = sum(weights) or 1
    parts = [total * w // weight for w in weights[:-1]]
    return [*parts, total - sum(parts)]


def _describe(error: object) -> str:
    """A transaction error as Solana writes it: `InstructionError(2, Custom(6003))`."""
    if isinstance(error, TransactionErrorInstructionError):
        inner = error.err
        detail = f"Custom({inner.code})" if isinstance(inner, InstructionErrorCustom) else _plain(inner)
        return f"InstructionError({error.index}, {detail})"
    return _plain(error)


def _plain(value: object) -> str:
    """`InstructionErrorFieldless.ComputationalBudgetExceeded` → `ComputationalBudgetExceeded`."""
    return str(value).rsplit(".", 1)[-1][:300]
