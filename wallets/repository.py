"""Wallet and reservation queries. Every function takes the caller's session and joins
its transaction: a placement reserves in the transaction that stores the order, a
landing spends in the one that moves the pools. Only this module writes `wallets`,
`wallet_balances` and `reservations`."""

from __future__ import annotations

import secrets
from decimal import Decimal

from solders.keypair import Keypair
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.domain import ReservationState, WalletCustody
from storage.models import Order, Reservation, Wallet, WalletBalance, utcnow
from wallets.errors import InsufficientFunds, Overdrawn
from wallets.schemas import Hold

__all__ = ["Reservation", "Wallet", "WalletBalance"]  # the rows callers read


async def create(session: AsyncSession, owner: str, genesis: dict[str, int]) -> bool:
    """The owner's wallet with a fresh keypair and the genesis balances, unless it
    exists; True when made now."""
    seed = secrets.token_bytes(32)
    made = await session.execute(
        insert(Wallet)
        .values(
            owner=owner,
            address=str(Keypair.from_seed(seed).pubkey()),
            seed=seed.hex(),
            custody=WalletCustody.SIMULATED,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(col(Wallet.owner))
    )
    if made.first() is None:
        return False
    for token, units in genesis.items():
        await session.execute(insert(WalletBalance).values(owner=owner, token=token, total=units, reserved=0))
    return True


async def hold(session: AsyncSession, owner: str, address: str, sealed_keypair: str) -> Wallet | None:
    """A wallet for the owner's own keypair, stored only sealed and with no balances
    (the chain has them); the wallet already there instead when the owner has one (it
    is never replaced)."""
    made = await session.execute(
        insert(Wallet)
        .values(
            owner=owner,
            address=address,
            seed="",
            custody=WalletCustody.HELD,
            sealed_keypair=sealed_keypair,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["owner"])
        .returning(col(Wallet.owner))
    )
    if made.first() is not None:
        return None
    existing = await session.get(Wallet, owner)
    assert existing is not None
    return existing


async def refresh_totals(session: AsyncSession, owner: str, on_chain: dict[str, int]) -> None:
    """Set each token's total to what the chain holds, but never below what stays
    reserved (total >= reserved always holds; available is then max(0, on chain -
    reserved)). Rows in a fixed order: they stay locked until the commit."""
    for token, units in sorted(on_chain.items()):
        await session.execute(
            insert(WalletBalance)
            .values(owner=owner, token=token, total=units, reserved=0)
            .on_conflict_do_update(
                index_elements=["owner", "token"],
                set_={"total": func.greatest(units, WalletBalance.__table__.c.reserved)},  # type: ignore[attr-defined]
            )
        )


async def held_by_token(session: AsyncSession, owner: str) -> dict[str, int]:
    """What the owner's open orders hold, per token: each held reservation's amount,
    and in SOL what is left of its fee budget."""
    held = await session.execute(
        select(Reservation).where(
            col(Reservation.owner) == owner, col(Reservation.state) == ReservationState.HELD
        )
    )
    units: dict[str, int] = {}
    for reservation in held.scalars():
        for token, amount in _held_by_token(reservation).items():
            units[token] = units.get(token, 0) + amount
    return units


async def lock(session: AsyncSession, owner: str) -> Wallet:
    """The owner's wallet row, locked until the transaction ends: one placement of an
    owner at a time, across every API process."""
    wallet = await session.get(Wallet, owner, with_for_update=True)
    assert wallet is not None, f"no wallet for {owner}"
    return wallet


async def get(session: AsyncSession, owner: str) -> Wallet | None:
    return await session.get(Wallet, owner)


async def by_address(session: AsyncSession, address: str) -> Wallet | None:
    return (await session.execute(select(Wallet).where(col(Wallet.address) == address))).scalar_one_or_none()


async def balances(session: AsyncSession, owner: str) -> list[WalletBalance]:
    rows = await session.execute(
        select(WalletBalance).where(col(WalletBalance.owner) == owner).order_by(col(WalletBalance.token))
    )
    return list(rows.scalars())


async def available(session: AsyncSession, owner: str, token: str) -> int:
    """What the owner may spend of `token` (total less reserved), its row locked."""
    row = await session.get(WalletBalance, (owner, token), with_for_update=True)
    return int(row.total - row.reserved) if row is not None else 0


async def top_up(session: AsyncSession, owner: str, token: str, units: int) -> WalletBalance:
    """Add `units` to the owner's `token`; the balance after."""
    await session.execute(
        insert(WalletBalance)
        .values(owner=owner, token=token, total=units, reserved=0)
        .on_conflict_do_update(
            index_elements=["owner", "token"],
            set_={"total": WalletBalance.__table__.c.total + units},  # type: ignore[attr-defined]
        )
    )
    row = await session.get(WalletBalance, (owner, token))
    assert row is not None
    return row


async def reserve(session: AsyncSession, order_id: str, hold: Hold) -> None:
    """Reserve what the order may spend. One conditional statement per token, so no
    interleaving of requests or processes can promise the same base unit twice;
    InsufficientFunds when it does not fit in `available`."""
    needs: dict[str, int] = {}
    for token, units in ((hold.token, hold.amount), ("SOL", hold.fee_lamports)):
        if units > 0:
            needs[token] = needs.get(token, 0) + units
    # The reservation row first, then the balances' conditional updates: a balance row
    # stays locked from its update to the commit, so the update comes last.
    session.add(
        Reservation(
            order_id=order_id,
            owner=hold.owner,
            token=hold.token,
            amount=Decimal(hold.amount),
            fee_lamports=Decimal(hold.fee_lamports),
            state=ReservationState.HELD,
        )
    )
    await session.flush()
    for token, units in sorted(needs.items()):
        reserved = await session.execute(
            update(WalletBalance)
            .where(
                col(WalletBalance.owner) == hold.owner,
                col(WalletBalance.token) == token,
                col(WalletBalance.total) - col(WalletBalance.reserved) >= units,
            )
            .values(reserved=col(WalletBalance.reserved) + units)
            .returning(col(WalletBalance.token))
        )
        if reserved.first() is None:
            row = await session.get(WalletBalance, (hold.owner, token))
            have = int(row.total - row.reserved) if row is not None else 0
            raise InsufficientFunds(token, units, have)


async def release(session: AsyncSession, order_id: str) -> bool:
    """Give back what an order that ended without executing had reserved; idempotent
    (False when nothing was held)."""
    held = (
        await session.execute(
            select(Reservation)
            .where(col(Reservation.order_id) == order_id, col(Reservation.state) == ReservationState.HELD)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if held is None:
        return False
    for token, units in _held_by_token(held).items():
        await session.execute(
            update(WalletBalance)
            .where(col(WalletBalance.owner) == held.owner, col(WalletBalance.token) == token)
            .values(reserved=col(WalletBalance.reserved) - units)
        )
    held.state, held.closed_at = ReservationState.RELEASED, utcnow()
    return True


async def hold_again(session: AsyncSession, order_id: str) -> bool:
    """Reserve again what a released reservation held (an operator re-drives a failed
    order); InsufficientFunds when it no longer fits. Nothing to do (False) when it is
    held."""
    held = await reservation(session, order_id, lock=True)
    if held is None or held.state is not ReservationState.RELEASED:
        return False
    await session.delete(held)
    await session.flush()
    await reserve(session, order_id, Hold(held.owner, held.token, int(held.amount), int(held.fee_lamports)))
    return True


async def forget(session: AsyncSession, order_id: str) -> None:
    """Release and delete an order's reservation (its order is being deleted)."""
    await release(session, order_id)
    held = await reservation(session, order_id)
    if held is not None:
        await session.delete(held)
        await session.flush()


async def reservation(session: AsyncSession, order_id: str, lock: bool = False) -> Reservation | None:
    query = select(Reservation).where(col(Reservation.order_id) == order_id)
    return (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()


async def owner_of_order(session: AsyncSession, order_id: str) -> str | None:
    """Whose wallet an order trades from: its reservation's owner, or (orders placed
    before reservations) the order's."""
    held = await reservation(session, order_id)
    if held is not None:
        return held.owner
    return await session.scalar(select(col(Order.owner)).where(col(Order.id) == order_id))


async def move(session: AsyncSession, owner: str, deltas: dict[str, tuple[int, int]]) -> None:
    """Within a landing: per token, add (Δtotal, Δreserved); rows locked in a fixed
    order. Overdrawn when a total would fall below what stays reserved."""
    for token, (total_delta, reserved_delta) in sorted(deltas.items()):
        row = await session.get(WalletBalance, (owner, token), with_for_update=True)
        if row is None:
            row = WalletBalance(owner=owner, token=token, total=Decimal(0), reserved=Decimal(0))
            session.add(row)
        total, reserved = row.total + total_delta, row.reserved + reserved_delta
        if reserved < 0 or total < reserved:
            raise Overdrawn(token, int(row.total - row.reserved))
        row.total, row.reserved = total, reserved


def spend(held: Reservation, amount_in: int, fees_paid: int) -> None:
    """The reservation became the spend of a landed transaction (its balances moved
    in the same transaction)."""
    held.state, held.spent, held.closed_at = ReservationState.SPENT, Decimal(amount_in), utcnow()
    held.fees_paid = Decimal(int(held.fees_paid or 0) + fees_paid)


def charge_fee(held: Reservation, paid: int, from_held_amount: int) -> None:
    """A landed, failed transaction's fee paid: from the fee budget, and
    `from_held_amount` of it from what the order held to trade."""
    held.fees_paid = Decimal(int(held.fees_paid or 0) + paid)
    held.amount -= from_held_amount


def _held_by_token(held: Reservation) -> dict[str, int]:
    units = {held.token: int(held.amount)}
    if fee_held(held):
        units["SOL"] = units.get("SOL", 0) + fee_held(held)
    return units


def fee_held(held: Reservation) -> int:
    """What is still reserved of the order's fee budget: the budget less the fees paid."""
    return max(int(held.fee_lamports) - int(held.fees_paid or 0), 0)


async def settle_on_chain(
    session: AsyncSession, held: Reservation, amount_in: int, fees_paid: int, balances_after: dict[str, int]
) -> None:
    """A real chain's landed transaction: the reservation became the spend, and the
    owner's balances are what the chain says they are after it (`balances_after`, from
    the transaction's meta). `total` never falls below what other orders keep reserved:
    availability is max(0, on chain − reserved), as at placement."""
    released = _held_by_token(held)
    spend(held, amount_in, fees_paid)
    for token in sorted(set(released) | set(balances_after)):
        row = await session.get(WalletBalance, (held.owner, token), with_for_update=True)
        if row is None:
            row = WalletBalance(owner=held.owner, token=token, total=Decimal(0), reserved=Decimal(0))
            session.add(row)
        row.reserved = max(row.reserved - released.get(token, 0), Decimal(0))
        if token in balances_after:
            row.total = max(Decimal(balances_after[token]), row.reserved)
        else:
            row.total = max(row.total, row.reserved)


async def charge_fee_on_chain(session: AsyncSession, held: Reservation, fee: int) -> None:
    """A real chain's transaction landed and failed: its fee, paid on chain, comes out
    of the order's fee budget (its hold on SOL) and the owner's SOL total."""
    from_budget = min(fee, fee_held(held))
    charge_fee(held, fee, 0)
    row = await session.get(WalletBalance, (held.owner, "SOL"), with_for_update=True)
    if row is not None:
        row.reserved = max(row.reserved - from_budget, Decimal(0))
        row.total = max(row.total - fee, row.reserved)
