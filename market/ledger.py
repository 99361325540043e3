"""The chain's ledger: executed transactions (at most one per idempotency key, ever)
and transactions that landed and failed, as the chain recorded them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from contracts.landing import Fees, LandingReport
from core.formatting import format_amount, from_base_units, to_base_units
from market.tokens import decimals_of
from storage.models import ChainTransaction, FailedTransaction, Order


@dataclass(frozen=True)
class LandedLeg:
    dex: str
    amount_in: int
    amount_out: int
    min_amount_out: int
    pool: str | None = None  # its pool id (None: recorded before pools were named)
    token_in: str = ""  # "" for legs recorded before multi-hop: the transaction's pair
    token_out: str = ""
    hop: int = 0


@dataclass(frozen=True)
class Landed:
    """An executed transaction, as the chain recorded it (base units)."""

    tx_hash: str
    amount_in: int
    amount_out: int
    slot: int
    legs: tuple[LandedLeg, ...] = ()
    report: LandingReport | None = None  # None: landed before the fee market


class TransactionLedger:
    """Executed transactions: at most one per idempotency key, ever (a unique constraint)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def find(self, idempotency_key: str) -> Landed | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ChainTransaction).where(col(ChainTransaction.idempotency_key) == idempotency_key)
                )
            ).scalar_one_or_none()
        return None if row is None else landed_of(row)

    async def find_failed(self, signature: str) -> FailedTransaction | None:
        """The transaction, if it landed and failed (and paid for it)."""
        async with self._sessions() as session:
            return await session.get(FailedTransaction, signature)

    async def recent(self, *, owner: str | None, order_id: str | None, limit: int) -> list[ChainTransaction]:
        """Newest first; `owner` narrows to that owner's orders' transactions."""
        query = select(ChainTransaction).order_by(col(ChainTransaction.at).desc()).limit(limit)
        if owner is not None:
            mine = select(col(Order.id)).where(col(Order.owner) == owner)
            query = query.where(col(ChainTransaction.order_id).in_(mine))
        if order_id is not None:
            query = query.where(col(ChainTransaction.order_id) == order_id)
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())


def record_executed(
    session: AsyncSession,
    landed: Landed,
    *,
    idempotency_key: str,
    order_id: str | None,
    dex: str,
    token_in: str,
    token_out: str,
    at: datetime,
) -> None:
    """Record an executed transaction in the caller's transaction (its landing): the
    unique idempotency key makes a second execution of the same key fail there."""
    assert landed.report is not None

    def human(amount: int, symbol: str) -> str:
        return format_amount(amount, decimals_of(symbol))

    session.add(
        ChainTransaction(
            tx_hash=landed.tx_hash,
            idempotency_key=idempotency_key,
            order_id=order_id,
            dex=dex,
            token_in=token_in,
            token_out=token_out,
            legs=[
                {
                    "dex": leg.dex,
                    "pool": leg.pool,
                    "hop": leg.hop,
                    "token_in": leg.token_in,
                    "token_out": leg.token_out,
                    "amount_in": human(leg.amount_in, leg.token_in or token_in),
                    "amount_out": human(leg.amount_out, leg.token_out or token_out),
                    "min_amount_out": human(leg.min_amount_out, leg.token_out or token_out),
                }
                for leg in landed.legs
            ],
            amount_in=from_base_units(landed.amount_in, decimals_of(token_in)),
            amount_out=from_base_units(landed.amount_out, decimals_of(token_out)),
            slot=landed.slot,
            at=at,
            landing=report_json(landed.report),
        )
    )


async def record_failed(session: AsyncSession, failed: FailedTransaction) -> bool:
    """Record a transaction that landed and failed, in the caller's transaction, once
    per signature: False when it was recorded (and charged) before."""
    values = {column.name: getattr(failed, column.name) for column in FailedTransaction.__table__.columns}  # type: ignore[attr-defined]
    charged = await session.execute(
        insert(FailedTransaction)
        .values(values)
        .on_conflict_do_nothing()
        .returning(col(FailedTransaction.signature))
    )
    return charged.first() is not None


def landed_of(row: ChainTransaction) -> Landed:
    """The chain's record of a transaction, in base units. Legs recorded before they
    carried their outputs have none (amount_out and minimum 0)."""
    legs = tuple(
        LandedLeg(
            leg["dex"],
            to_base_units(Decimal(leg["amount_in"]), decimals_of(leg.get("token_in") or row.token_in)),
            to_base_units(
                Decimal(leg.get("amount_out", "0")), decimals_of(leg.get("token_out") or row.token_out)
            ),
            to_base_units(
                Decimal(leg.get("min_amount_out", "0")), decimals_of(leg.get("token_out") or row.token_out)
            ),
            leg.get("pool"),
            leg.get("token_in", ""),
            leg.get("token_out", ""),
            leg.get("hop", 0),
        )
        for leg in row.legs
    )
    return Landed(
        row.tx_hash,
        to_base_units(row.amount_in, decimals_of(row.token_in)),
        to_base_units(row.amount_out, decimals_of(row.token_out)),
        row.slot,
        legs,
        report_of(row.landing) if row.landing else None,
    )


def report_json(report: LandingReport) -> dict[str, Any]:
    return asdict(report)


def report_of(data: dict[str, Any]) -> LandingReport:
    return LandingReport(**{**data, "fees": Fees(**data["fees"])})
