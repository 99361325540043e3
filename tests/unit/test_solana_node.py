"""The tests' own Solana JSON-RPC node, seen through solana-py's AsyncClient as the engine
sees it: every method it answers, transactions landing exactly (fees, balances, token
balances), expiry, atomic failure, duplicates, injected faults and venue programs."""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorInstructionError

from onchain.spl import (
    ASSOCIATED_TOKEN_PROGRAM,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    associated_token_address,
    decode_token_account,
)
from tests.solana_node.accounts import SYSTEM_PROGRAM
from tests.solana_node.fixtures import fixtures_directory, load_fixture_accounts
from tests.solana_node.node import MAINNET_GENESIS_HASH, TEST_GENESIS_HASH, SolanaNode
from tests.solana_node.programs import AccountReader, ProgramEffect, ProgramFailure, TokenMove

FIXTURES = fixtures_directory()
DLMM_PROGRAM = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
PUMP_POOL = Pubkey.from_string("EtAdVRLFH22rjWh3mcUasKFF27WtHhsaCvK27tPFFWig")
PUMP_MINT = Pubkey.from_string("Df6yfrKC8kZE3KNkrHERKzAetSxbrWeniQfyJY4Jpump")
PUMP_RESERVE = Pubkey.from_string("BmW4cCRpJwwL8maFB1AoAuEQf96t64Eq5gUvXikZardM")
SOL_RESERVE = Pubkey.from_string("FDZDrPtCjmSHeq14goCxp5pCJSRekSXY3XSgGz5Rvass")
# Token-2022 with a transfer fee of 50 bps capped at 5 000 base units
FEE_MINT = Pubkey.from_string("B4rGSdcBrmLEPUQXpZa91PMsRE3GqNcjLd6EMvM3yaj2")
TOKEN_ACCOUNT_RENT = 2_039_280
SOL = 1_000_000_000


@pytest.fixture
def node() -> Iterator[SolanaNode]:
    with SolanaNode(load_fixture_accounts(FIXTURES), slot_ms=None, unix_time=1_700_000_000) as running:
        yield running


@pytest.fixture
async def client(node: SolanaNode) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(node.url, commitment=Confirmed, timeout=0.5) as connected:
        yield connected


@pytest.fixture
def payer(node: SolanaNode) -> Keypair:
    keypair = Keypair()
    node.fund_sol(keypair.pubkey(), 2 * SOL)
    return keypair


async def signed(
    client: AsyncClient, payer: Keypair, instructions: list[Instruction], blockhash: Hash | None = None
) -> VersionedTransaction:
    if blockhash is None:
        blockhash = (await client.get_latest_blockhash()).value.blockhash  # at the client's commitment
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash)
    return VersionedTransaction(message, [payer])


async def send(
    client: AsyncClient, transaction: VersionedTransaction, skip_preflight: bool = False
) -> Signature:
    # TxOpts' preflight commitment defaults to finalized, whose bank does not know a blockhash
    # fetched at confirmed yet (as on a real cluster)
    options = TxOpts(skip_preflight=skip_preflight, preflight_commitment=Confirmed)
    return (await client.send_transaction(transaction, options)).value


def create_ata(payer: Pubkey, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM) -> Instruction:
    accounts = [
        AccountMeta(payer, True, True),
        AccountMeta(associated_token_address(owner, mint, program), False, True),
        AccountMeta(owner, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(SYSTEM_PROGRAM, False, False),
        AccountMeta(program, False, False),
    ]
    return Instruction(ASSOCIATED_TOKEN_PROGRAM, b"\x01", accounts)


def token_transfer(
    source: Pubkey, destination: Pubkey, authority: Pubkey, amount: int, program: Pubkey = TOKEN_PROGRAM
) -> Instruction:
    accounts = [
        AccountMeta(source, False, True),
        AccountMeta(destination, False, True),
        AccountMeta(authority, True, False),
    ]
    return Instruction(program, bytes([3]) + struct.pack("<Q", amount), accounts)


def transfer_checked(
    source: Pubkey,
    mint: Pubkey,
    destination: Pubkey,
    authority: Pubkey,
    amount: int,
    decimals: int,
    program: Pubkey,
) -> Instruction:
    accounts = [
        AccountMeta(source, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(destination, False, True),
        AccountMeta(authority, True, False),
    ]
    return Instruction(program, bytes([12]) + struct.pack("<QB", amount, decimals), accounts)


def sync_native(account: Pubkey) -> Instruction:
    return Instruction(TOKEN_PROGRAM, bytes([17]), [AccountMeta(account, False, True)])


def close_account(
    account: Pubkey, destination: Pubkey, owner: Pubkey, program: Pubkey = TOKEN_PROGRAM
) -> Instruction:
    accounts = [
        AccountMeta(account, False, True),
        AccountMeta(destination, False, True),
        AccountMeta(owner, True, False),
    ]
    return Instruction(program, bytes([9]), accounts)


def sol_transfer(source: Pubkey, destination: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=source, to_pubkey=destination, lamports=lamports))


def token_amount(node: SolanaNode, address: Pubkey) -> int:
    account = node.account(address)
    assert account is not None
    return decode_token_account(address, account.owner, account.data).amount


def lamports(node: SolanaNode, address: Pubkey) -> int:
    account = node.account(address)
    return account.lamports if account is not None else 0


# -- reading state ------------------------------------------------------------------------


def test_fixture_accounts_load_with_their_owners_and_bytes() -> None:
    accounts = load_fixture_accounts(FIXTURES)
    pool = accounts[PUMP_POOL]
    assert pool.owner == DLMM_PROGRAM
    assert pool.data == (FIXTURES / "meteora-dlmm" / str(PUMP_POOL) / "lb_pair.bin").read_bytes()
    assert accounts[
        Pubkey.from_string("D4FPEruKEHrG5TenZ2mpDGEfu1iUvTiqBxvpU8HLBvC2")
    ].owner == Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
    reserve = decode_token_account(SOL_RESERVE, TOKEN_PROGRAM, accounts[SOL_RESERVE].data)
    # wrapped SOL: its lamports are the rent reserve and the tokens
    assert accounts[SOL_RESERVE].lamports == TOKEN_ACCOUNT_RENT + reserve.amount


async def test_accounts_are_served_base64_and_missing_ones_as_null(
    node: SolanaNode, client: AsyncClient
) -> None:
    info = (await client.get_account_info(PUMP_POOL)).value
    assert info is not None and info.owner == DLMM_PROGRAM
    assert info.data == (FIXTURES / "meteora-dlmm" / str(PUMP_POOL) / "lb_pair.bin").read_bytes()
    assert (await client.get_account_info(Keypair().pubkey())).value is None
    many = (await client.get_multiple_accounts([PUMP_POOL, Keypair().pubkey(), PUMP_MINT])).value
    assert many[0] is not None and many[0].data == info.data
    assert many[1] is None
    assert many[2] is not None and many[2].owner == TOKEN_PROGRAM


async def test_balances_token_accounts_rent_genesis_and_health(node: SolanaNode, client: AsyncClient) -> None:
    owner = Keypair().pubkey()
    node.fund_sol(owner, 3 * SOL)
    pump_account = node.mint_tokens_to(owner, PUMP_MINT, 1_234_567)
    fee_account = node.mint_tokens_to(owner, FEE_MINT, 10)
    wsol_account = node.mint_tokens_to(owner, NATIVE_MINT, SOL)

    assert (await client.get_balance(owner)).value == 3 * SOL
    assert (await client.get_balance(wsol_account)).value == TOKEN_ACCOUNT_RENT + SOL
    balance = (await client.get_token_account_balance(pump_account)).value
    assert (balance.amount, balance.decimals, balance.ui_amount_string) == ("1234567", 6, "1.234567")
    by_mint = (await client.get_token_accounts_by_owner(owner, TokenAccountOpts(mint=PUMP_MINT))).value
    assert [entry.pubkey for entry in by_mint] == [pump_account]
    by_program = (
        await client.get_token_accounts_by_owner(owner, TokenAccountOpts(program_id=TOKEN_PROGRAM))
    ).value
    assert {entry.pubkey for entry in by_program} == {pump_account, wsol_account}
    token_2022 = (
        await client.get_token_accounts_by_owner(owner, TokenAccountOpts(program_id=TOKEN_2022_PROGRAM))
    ).value
    assert [entry.pubkey for entry in token_2022] == [fee_account]
    # ImmutableOwner and TransferFeeAmount, as the ATA program makes it
    assert len(token_2022[0].account.data) == 182

    assert (await client.get_minimum_balance_for_rent_exemption(165)).value == TOKEN_ACCOUNT_RENT
    assert str((await client.get_genesis_hash()).value) == TEST_GENESIS_HASH
    node.genesis_hash = MAINNET_GENESIS_HASH
    assert str((await client.get_genesis_hash()).value) == MAINNET_GENESIS_HASH
    assert await client.is_connected()


async def test_slots_heights_and_blockhashes_advance_with_the_clock(
    node: SolanaNode, client: AsyncClient
) -> None:
    slot = (await client.get_slot(Processed)).value
    height = (await client.get_block_height(Processed)).value
    latest = (await client.get_latest_blockhash(Processed)).value
    assert latest.last_valid_block_height == height + 150
    node.advance(3)
    assert (await client.get_slot(Processed)).value == slot + 3
    assert (await client.get_block_height(Processed)).value == height + 3
    assert (await client.get_slot(Confirmed)).value == slot + 2
    assert (await client.get_slot(Finalized)).value == slot + 3 - 32
    newer = (await client.get_latest_blockhash(Processed)).value
    assert newer.blockhash != latest.blockhash and newer.last_valid_block_height == height + 3 + 150


async def test_prioritization_fees_are_what_the_test_sets(node: SolanaNode, client: AsyncClient) -> None:
    node.set_prioritization_fees([0, 1_000, 50_000])
    fees = (await client.get_recent_prioritization_fees([PUMP_POOL])).value
    slot = (await client.get_slot(Processed)).value
    assert [(fee.slot, fee.prioritization_fee) for fee in fees] == [
        (slot - 2, 0),
        (slot - 1, 1_000),
        (slot, 50_000),
    ]


async def test_any_other_method_is_not_found(node: SolanaNode) -> None:
    async with httpx.AsyncClient() as http:
        answer = (await http.post(node.url, json={"jsonrpc": "2.0", "id": 7, "method": "getVersion"})).json()
        assert answer == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 7}
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
            {"jsonrpc": "2.0", "id": 2, "method": "getSlot"},
        ]
        answers = (await http.post(node.url, json=batch)).json()
        assert [answer["id"] for answer in answers] == [1, 2] and answers[0]["result"] == "ok"
    assert node.calls == ["getVersion", "getHealth", "getSlot"]


# -- transactions -------------------------------------------------------------------------


async def test_a_sol_transfer_lands_with_exact_balances_and_fee(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    recipient = Keypair().pubkey()
    instructions = [
        set_compute_unit_limit(10_000),
        set_compute_unit_price(250_000),  # micro-lamports per unit: 2 500 lamports for 10 000 units
        sol_transfer(payer.pubkey(), recipient, SOL // 2),
    ]
    transaction = await signed(client, payer, instructions)
    simulated = (await client.simulate_transaction(transaction, accounts_addresses=[recipient])).value
    assert simulated.err is None and simulated.units_consumed == 450
    assert simulated.accounts is not None and simulated.accounts[0] is not None
    assert simulated.accounts[0].lamports == SOL // 2
    assert (await client.get_balance(recipient)).value == 0  # a simulation changes nothing

    signature = await send(client, transaction)
    assert (await client.get_signature_statuses([signature])).value == [None]
    node.advance(1)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert (
        status is not None
        and status.err is None
        and str(status.confirmation_status) == "TransactionConfirmationStatus.Processed"
    )
    node.advance(1)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and status.confirmations == 1
    assert str(status.confirmation_status) == "TransactionConfirmationStatus.Confirmed"

    landed = (await client.get_transaction(signature, max_supported_transaction_version=0)).value
    assert landed is not None and landed.slot == status.slot
    meta = landed.transaction.meta
    assert meta is not None and meta.err is None
    assert meta.fee == 5_000 + 2_500
    keys = landed.transaction.transaction.message.account_keys  # type: ignore[union-attr]
    index = {str(key): position for position, key in enumerate(keys)}
    assert meta.pre_balances[index[str(payer.pubkey())]] == 2 * SOL
    assert meta.post_balances[index[str(payer.pubkey())]] == 2 * SOL - SOL // 2 - 7_500
    assert (meta.pre_balances[index[str(recipient)]], meta.post_balances[index[str(recipient)]]) == (
        0,
        SOL // 2,
    )
    assert meta.compute_units_consumed == 450
    assert (await client.get_balance(payer.pubkey())).value == 2 * SOL - SOL // 2 - 7_500

    wire = (await client.get_transaction(signature, "base64", max_supported_transaction_version=0)).value
    assert wire is not None and bytes(wire.transaction.transaction) == bytes(transaction)
    node.advance(31)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and status.confirmations is None
    assert str(status.confirmation_status) == "TransactionConfirmationStatus.Finalized"


async def test_a_v0_transaction_needs_max_supported_version_to_be_read(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    signature = await send(
        client, await signed(client, payer, [sol_transfer(payer.pubkey(), Keypair().pubkey(), SOL)])
    )
    node.advance(2)
    with pytest.raises(RPCException):
        await client.get_transaction(signature)


async def test_an_expired_transaction_never_lands(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    recipient = Keypair().pubkey()
    latest = (await client.get_latest_blockhash()).value
    held = await signed(client, payer, [sol_transfer(payer.pubkey(), recipient, SOL)], latest.blockhash)
    node.hold_landing()
    signature = await send(client, held)
    height = (await client.get_block_height(Processed)).value
    node.advance(latest.last_valid_block_height - height + 1)  # past its last valid block height
    node.release_landing()
    node.advance(5)
    assert (await client.get_signature_statuses([signature])).value == [None]
    assert (await client.get_transaction(signature, max_supported_transaction_version=0)).value is None
    assert (await client.get_balance(recipient)).value == 0

    with pytest.raises(RPCException) as refused:  # preflight refuses the stale blockhash
        await send(client, held)
    assert "Blockhash not found" in str(refused.value)
    resent = await send(client, held, skip_preflight=True)  # accepted blind, as a real node does
    node.advance(2)
    assert resent == signature and (await client.get_signature_statuses([resent])).value == [None]
    with pytest.raises(RPCException, match="Blockhash not found"):
        await send(
            client,
            await signed(client, payer, [sol_transfer(payer.pubkey(), recipient, 1)], Hash.new_unique()),
        )


async def test_a_failing_instruction_charges_only_the_fee(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    recipient = Keypair().pubkey()
    pump = node.mint_tokens_to(payer.pubkey(), PUMP_MINT, 100)
    other = node.mint_tokens_to(recipient, PUMP_MINT, 0)
    instructions = [
        sol_transfer(payer.pubkey(), recipient, SOL),
        token_transfer(pump, other, payer.pubkey(), 101),  # one more than it holds
    ]
    transaction = await signed(client, payer, instructions)
    with pytest.raises(RPCException, match="custom program error: 0x1"):
        await send(client, transaction)  # preflight sees it fail
    signature = await send(client, transaction, skip_preflight=True)
    node.advance(2)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and status.err is not None
    error = status.err
    assert isinstance(error, TransactionErrorInstructionError) and error.index == 1
    assert (await client.get_balance(payer.pubkey())).value == 2 * SOL - 5_000
    assert (await client.get_balance(recipient)).value == 0
    assert token_amount(node, pump) == 100 and token_amount(node, other) == 0
    landed = (await client.get_transaction(signature, max_supported_transaction_version=0)).value
    assert landed is not None and landed.transaction.meta is not None
    assert landed.transaction.meta.fee == 5_000
    assert landed.transaction.meta.post_balances[0] == 2 * SOL - 5_000


async def test_a_transfer_leaving_an_account_below_rent_fails(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    recipient = Keypair().pubkey()
    transaction = await signed(client, payer, [sol_transfer(payer.pubkey(), recipient, 1_000)])
    simulated = (await client.simulate_transaction(transaction)).value
    assert simulated.err is not None and "InsufficientFundsForRent" in str(simulated.err)


async def test_a_transaction_sent_twice_lands_once(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    recipient = Keypair().pubkey()
    transaction = await signed(client, payer, [sol_transfer(payer.pubkey(), recipient, SOL)])
    first = await send(client, transaction)
    second = await send(client, transaction)
    node.advance(2)
    third = await send(client, transaction, skip_preflight=True)
    node.advance(2)
    assert first == second == third
    assert (await client.get_balance(recipient)).value == SOL
    assert (await client.get_balance(payer.pubkey())).value == SOL - 5_000
    with pytest.raises(RPCException, match="already been processed"):
        await send(client, transaction)


async def test_bad_signatures_are_refused(node: SolanaNode, client: AsyncClient, payer: Keypair) -> None:
    transaction = await signed(client, payer, [sol_transfer(payer.pubkey(), Keypair().pubkey(), SOL)])
    forged = VersionedTransaction.populate(transaction.message, [Keypair().sign_message(b"something else")])
    with pytest.raises(RPCException, match="SignatureVerificationFailure"):
        await send(client, forged, skip_preflight=True)
    simulated = (await client.simulate_transaction(forged, replace_recent_blockhash=True)).value
    assert simulated.err is None and simulated.replacement_blockhash is not None  # no sigVerify asked


async def test_wrapping_creating_and_closing_token_accounts_moves_exact_lamports(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    owner = payer.pubkey()
    wsol = associated_token_address(owner, NATIVE_MINT)
    instructions = [
        create_ata(owner, owner, NATIVE_MINT),
        create_ata(owner, owner, NATIVE_MINT),  # idempotent
        sol_transfer(owner, wsol, SOL // 4),
        sync_native(wsol),
    ]
    signature = await send(client, await signed(client, payer, instructions))
    node.advance(2)
    assert token_amount(node, wsol) == SOL // 4
    assert lamports(node, wsol) == TOKEN_ACCOUNT_RENT + SOL // 4
    assert lamports(node, owner) == 2 * SOL - 5_000 - TOKEN_ACCOUNT_RENT - SOL // 4
    landed = (await client.get_transaction(signature, max_supported_transaction_version=0)).value
    assert landed is not None and landed.transaction.meta is not None
    meta = landed.transaction.meta
    assert meta.pre_token_balances == []
    [balance] = meta.post_token_balances or []
    assert (str(balance.mint), str(balance.owner), str(balance.program_id)) == (
        str(NATIVE_MINT),
        str(owner),
        str(TOKEN_PROGRAM),
    )
    assert (
        balance.ui_token_amount.amount == str(SOL // 4) and balance.ui_token_amount.ui_amount_string == "0.25"
    )

    await send(client, await signed(client, payer, [close_account(wsol, owner, owner)]))
    node.advance(2)
    assert node.account(wsol) is None
    assert lamports(node, owner) == 2 * SOL - 10_000


async def test_token_2022_transfers_withhold_the_mint_transfer_fee(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    source = node.mint_tokens_to(payer.pubkey(), FEE_MINT, 10**12)
    receiver = Keypair().pubkey()
    destination = node.mint_tokens_to(receiver, FEE_MINT, 0)
    small, large = 10_000, 10**10  # 50 bps: 50 withheld; capped at 5 000
    instructions = [
        transfer_checked(source, FEE_MINT, destination, payer.pubkey(), small, 9, TOKEN_2022_PROGRAM),
        transfer_checked(source, FEE_MINT, destination, payer.pubkey(), large, 9, TOKEN_2022_PROGRAM),
    ]
    await send(client, await signed(client, payer, instructions))
    node.advance(2)
    assert token_amount(node, source) == 10**12 - small - large
    assert token_amount(node, destination) == small - 50 + large - 5_000
    for refused, error in [
        (
            token_transfer(source, destination, payer.pubkey(), 1, TOKEN_2022_PROGRAM),
            "Custom(31)",
        ),  # MintRequiredForTransfer
        (token_transfer(source, destination, payer.pubkey(), 1, TOKEN_PROGRAM), "IncorrectProgramId"),
    ]:
        simulated = (await client.simulate_transaction(await signed(client, payer, [refused]))).value
        assert simulated.err is not None and error in str(simulated.err)


# -- faults --------------------------------------------------------------------------------


async def test_rate_limits_and_server_errors_reach_the_client_as_errors(
    node: SolanaNode, client: AsyncClient
) -> None:
    node.fail_next("getSlot", 2, "429")
    node.fail_next("getBlockHeight", 1, "500")
    for _ in range(2):
        with pytest.raises(SolanaRpcException):
            await client.get_slot()
    await client.get_slot()
    with pytest.raises(SolanaRpcException):
        await client.get_block_height()
    assert node.calls == ["getSlot", "getSlot", "getSlot", "getBlockHeight"]


async def test_a_timed_out_send_still_lands(node: SolanaNode, client: AsyncClient, payer: Keypair) -> None:
    node.timeout_fault_seconds = 2.0
    recipient = Keypair().pubkey()
    transaction = await signed(client, payer, [sol_transfer(payer.pubkey(), recipient, SOL)])
    node.fail_next("sendTransaction", 2, "timeout")
    with pytest.raises(SolanaRpcException):
        await send(client, transaction)  # the client gives up after 0.5 s, retries once, gives up
    assert node.calls.count("sendTransaction") == 2
    node.advance(2)
    assert (await client.get_balance(recipient)).value == SOL


async def test_an_injected_blockhash_not_found_is_the_real_error(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    transaction = await signed(client, payer, [sol_transfer(payer.pubkey(), Keypair().pubkey(), SOL)])
    node.fail_next("sendTransaction", 1, "blockhash_not_found")
    with pytest.raises(RPCException, match="Blockhash not found"):
        await send(client, transaction)
    node.advance(2)
    assert (await client.get_balance(payer.pubkey())).value == 2 * SOL  # it was never accepted
    await send(client, transaction)


async def test_a_lagging_node_answers_as_of_slots_ago(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    signature = await send(
        client, await signed(client, payer, [sol_transfer(payer.pubkey(), Keypair().pubkey(), SOL)])
    )
    node.advance(2)
    slot = (await client.get_slot(Processed)).value
    node.behind(5)
    assert (await client.get_slot(Processed)).value == slot - 5
    assert (await client.get_signature_statuses([signature])).value == [None]
    node.behind(0)
    assert (await client.get_signature_statuses([signature])).value[0] is not None


# -- venue programs --------------------------------------------------------------------------


def fake_swap(data: bytes, keys: list[Pubkey], read: AccountReader, unix_ts: int) -> ProgramEffect:
    """Pays `amount_in` PUMP into the pool, out a tenth of it in wrapped SOL; the pool's
    SOL reserve is owned by its PDA; fails 6003 under `minimum_out`; stamps the pool."""
    amount_in, minimum_out = struct.unpack("<QQ", data)
    user, user_pump, user_wsol, pump_reserve, sol_reserve, pool = keys
    amount_out = amount_in // 10
    if amount_out < minimum_out:
        raise ProgramFailure(6003, "ExceededAmountSlippageTolerance")
    reserve = read(sol_reserve)
    pool_data = read(pool)
    assert reserve is not None and pool_data is not None
    pool_authority = Pubkey(reserve[32:64])
    return ProgramEffect(
        writes={pool: struct.pack("<Q", unix_ts) + pool_data[8:]},
        moves=(
            TokenMove(user_pump, pump_reserve, amount_in, user),
            TokenMove(sol_reserve, user_wsol, amount_out, pool_authority),
        ),
        compute_units=60_000,
        logs=("Program log: Instruction: Swap",),
    )


def swap_instruction(user: Pubkey, amount_in: int, minimum_out: int) -> Instruction:
    keys = [
        (user, True, False),
        (associated_token_address(user, PUMP_MINT), False, True),
        (associated_token_address(user, NATIVE_MINT), False, True),
        (PUMP_RESERVE, False, True),
        (SOL_RESERVE, False, True),
        (PUMP_POOL, False, True),
    ]
    accounts = [AccountMeta(key, signer, writable) for key, signer, writable in keys]
    return Instruction(DLMM_PROGRAM, struct.pack("<QQ", amount_in, minimum_out), accounts)


async def test_a_registered_venue_program_moves_tokens_through_the_token_program(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    node.register_program(DLMM_PROGRAM, fake_swap)
    user = payer.pubkey()
    user_pump = node.mint_tokens_to(user, PUMP_MINT, 5_000_000)
    user_wsol = associated_token_address(user, NATIVE_MINT)
    reserve_before, reserve_lamports = token_amount(node, SOL_RESERVE), lamports(node, SOL_RESERVE)
    instructions = [
        set_compute_unit_limit(100_000),
        create_ata(user, user, NATIVE_MINT),
        swap_instruction(user, 5_000_000, 500_000),
        close_account(user_wsol, user, user),  # unwrap what came out
    ]
    signature = await send(client, await signed(client, payer, instructions))
    node.advance(2)

    landed = (await client.get_transaction(signature, max_supported_transaction_version=0)).value
    assert landed is not None and landed.transaction.meta is not None
    meta = landed.transaction.meta
    assert meta.err is None and meta.fee == 5_000
    assert meta.post_balances[0] - meta.pre_balances[0] == 500_000 - 5_000  # rent paid and given back
    assert token_amount(node, user_pump) == 0 and token_amount(node, PUMP_RESERVE) > 0
    assert token_amount(node, SOL_RESERVE) == reserve_before - 500_000
    assert lamports(node, SOL_RESERVE) == reserve_lamports - 500_000
    pool = node.account(PUMP_POOL)
    assert pool is not None and struct.unpack_from("<Q", pool.data)[0] == 1_700_000_000 + 2 * 400 // 1000
    pre = {(b.mint, b.owner): int(b.ui_token_amount.amount) for b in meta.pre_token_balances or []}
    post = {(b.mint, b.owner): int(b.ui_token_amount.amount) for b in meta.post_token_balances or []}
    assert pre[(PUMP_MINT, user)] - post[(PUMP_MINT, user)] == 5_000_000
    assert meta.log_messages is not None and "Program log: Instruction: Swap" in meta.log_messages


async def test_a_venue_program_failure_reverts_the_swap_and_keeps_the_fee(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    node.register_program(DLMM_PROGRAM, fake_swap)
    user = payer.pubkey()
    user_pump = node.mint_tokens_to(user, PUMP_MINT, 5_000_000)
    pool_before = node.account(PUMP_POOL)
    instructions = [create_ata(user, user, NATIVE_MINT), swap_instruction(user, 5_000_000, 500_001)]
    signature = await send(client, await signed(client, payer, instructions), skip_preflight=True)
    node.advance(2)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and isinstance(status.err, TransactionErrorInstructionError)
    assert status.err.index == 1 and "6003" in str(status.err.err)
    assert token_amount(node, user_pump) == 5_000_000
    assert node.account(associated_token_address(user, NATIVE_MINT)) is None
    assert node.account(PUMP_POOL) == pool_before
    assert lamports(node, user) == 2 * SOL - 5_000


async def test_exceeding_the_compute_unit_limit_fails_the_transaction(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    node.register_program(DLMM_PROGRAM, fake_swap)
    user = payer.pubkey()
    node.mint_tokens_to(user, PUMP_MINT, 5_000_000)
    node.mint_tokens_to(user, NATIVE_MINT, 0)
    instructions = [
        set_compute_unit_limit(50_000),
        set_compute_unit_price(1_000_000),
        swap_instruction(user, 10, 1),
    ]
    simulated = (await client.simulate_transaction(await signed(client, payer, instructions))).value
    assert simulated.err is not None and "ComputationalBudgetExceeded" in str(simulated.err)
    assert simulated.units_consumed == 50_000
    assert simulated.fee == 5_000 + 50_000  # the fee is on the limit asked for, not the units used


async def test_a_pool_authority_that_is_not_the_owner_cannot_move_tokens(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    def thief(data: bytes, keys: list[Pubkey], read: AccountReader, unix_ts: int) -> ProgramEffect:
        return ProgramEffect(
            moves=(TokenMove(SOL_RESERVE, keys[2], 1, Pubkey.find_program_address([b"x"], DLMM_PROGRAM)[0]),)
        )

    node.register_program(DLMM_PROGRAM, thief)
    user = payer.pubkey()
    node.mint_tokens_to(user, NATIVE_MINT, 0)
    simulated = (
        await client.simulate_transaction(await signed(client, payer, [swap_instruction(user, 1, 0)]))
    ).value
    assert simulated.err is not None and "Custom(4)" in str(simulated.err)  # OwnerMismatch


# -- another process ------------------------------------------------------------------------


async def test_the_node_runs_as_a_subprocess() -> None:
    repository = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.solana_node", "--fixtures", str(FIXTURES), "--slot-ms", "0"]
    process = await asyncio.create_subprocess_exec(*command, cwd=repository, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert ready.startswith("ready http://127.0.0.1:")
        url = ready.split()[1]
        async with AsyncClient(url, commitment=Confirmed) as remote, httpx.AsyncClient() as http:
            assert (await remote.get_account_info(PUMP_POOL)).value is not None
            slot = (await remote.get_slot()).value
            control = {"call": "advance", "args": [3]}
            assert (await http.post(f"{url}/control", json=control)).json() == {"result": None}
            assert (await remote.get_slot()).value == slot + 3
            calls = (await http.post(f"{url}/control", json={"call": "calls"})).json()
            assert calls == {"result": ["getAccountInfo", "getSlot", "getSlot"]}
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    assert process.returncode == 0


async def test_preflight_runs_in_the_bank_at_its_commitment(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    transaction = await signed(client, payer, [sol_transfer(payer.pubkey(), Keypair().pubkey(), SOL)])
    with pytest.raises(RPCException, match="Blockhash not found"):  # the finalized bank is 31 slots older
        await client.send_transaction(transaction, TxOpts(preflight_commitment=Finalized))
    node.advance(31)
    await client.send_transaction(transaction, TxOpts(preflight_commitment=Finalized))


async def test_a_token_2022_account_holding_withheld_fees_cannot_be_closed(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    source = node.mint_tokens_to(payer.pubkey(), FEE_MINT, 10_000)
    receiver = Keypair()
    node.fund_sol(receiver.pubkey(), SOL)
    target = node.mint_tokens_to(receiver.pubkey(), FEE_MINT, 0)
    move = transfer_checked(source, FEE_MINT, target, payer.pubkey(), 10_000, 9, TOKEN_2022_PROGRAM)
    await send(client, await signed(client, payer, [move]))
    node.advance(2)
    assert token_amount(node, target) == 10_000 - 50
    give_back = transfer_checked(target, FEE_MINT, source, receiver.pubkey(), 9_950, 9, TOKEN_2022_PROGRAM)
    close = close_account(target, receiver.pubkey(), receiver.pubkey(), TOKEN_2022_PROGRAM)
    simulated = (await client.simulate_transaction(await signed(client, receiver, [give_back, close]))).value
    assert simulated.err is not None and "Custom(35)" in str(simulated.err)  # AccountHasWithheldTransferFees


async def test_a_venue_emulation_bug_fails_its_instruction_and_is_kept_for_the_test(
    node: SolanaNode, client: AsyncClient, payer: Keypair
) -> None:
    def broken(data: bytes, keys: list[Pubkey], read: AccountReader, unix_ts: int) -> ProgramEffect:
        raise ZeroDivisionError("division by zero")

    node.register_program(DLMM_PROGRAM, broken)
    simulated = (
        await client.simulate_transaction(
            await signed(client, payer, [swap_instruction(payer.pubkey(), 1, 0)])
        )
    ).value
    assert simulated.err is not None and "ProgramFailedToComplete" in str(simulated.err)
    assert [type(bug) for bug in node.program_panics] == [ZeroDivisionError]
