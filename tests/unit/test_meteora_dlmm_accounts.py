"""Meteora DLMM on real mainnet accounts: decoding, the bin arrays a swap crosses, quotes
equal to the meteora-dlmm library's (checked against the program), instruction goldens,
error mapping, and the test node's emulation of the program."""

from __future__ import annotations

import struct
from dataclasses import replace

import meteora_dlmm
import pytest
from solders.pubkey import Pubkey

from contracts.failures import MarketErrorCode
from market.dlmm import DlmmBook, FeeParameters, Volatility
from onchain.meteora_dlmm import (
    EVENT_AUTHORITY,
    MEMO_PROGRAM_ID,
    PROGRAM_ID,
    BitmapExtension,
    LbPair,
    NotADlmmAccount,
    bin_array_address,
    bin_array_index,
    bin_arrays_around,
    bin_arrays_for_swap,
    bitmap_extension_address,
    decode_bin_array,
    decode_bitmap_extension,
    decode_lb_pair,
    dlmm_book,
    program_error,
    quote_exact_in,
    quote_exact_out,
    swap2_instruction,
    swap_exact_out2_instruction,
    transfer_fees,
    write_bin_amounts,
    write_lb_pair_state,
)
from onchain.spl import TOKEN_2022_PROGRAM, TOKEN_PROGRAM, Mint, transfer_fee, unsupported_extensions
from tests.solana_node.dlmm_program import meteora_dlmm_program
from tests.solana_node.programs import ProgramFailure, TokenMove
from tests.unit.meteora_dlmm_fixtures import DlmmFixture, dlmm_fixture, dlmm_fixtures

POOLS = dlmm_fixtures()
IDS = [pool.name[:6] for pool in POOLS]
SECONDS_AFTER_LAST_UPDATE = 45
EPOCH = 900  # after B5Ei…'s transfer fee epoch (835)

# Golden values, read by hand from the accounts (idls/dlmm.json LbPair at 5067/7072).
GOLDEN = {
    "EtAd": {
        "bin_step": 250,
        "active_id": 15,
        "fees": FeeParameters(4000, 0, 7500, 150_000, 300, 1200, 5000),
        "volatility": Volatility(10_000, 0, 16, 1_734_391_447),
        "x": ("Df6yfrKC8kZE3KNkrHERKzAetSxbrWeniQfyJY4Jpump", TOKEN_PROGRAM),
        "y": ("So11111111111111111111111111111111111111112", TOKEN_PROGRAM),
        "reserves": (
            "BmW4cCRpJwwL8maFB1AoAuEQf96t64Eq5gUvXikZardM",
            "FDZDrPtCjmSHeq14goCxp5pCJSRekSXY3XSgGz5Rvass",
        ),
        "oracle": "Fnkg415DEx72GSPooKUWTbPS9wzKucQe4qnvFrrvcZK2",
        "kind": (0, 0, 0, 0, 0),  # pair type, status, activation type, function type, collect-fee mode
        "bitmap": [-1, 0, 1],
        "arrays": (0, -1),
    },
    "B5Ei": {
        "bin_step": 10,
        "active_id": 0,
        "fees": FeeParameters(10_000, 2, 40_000, 350_000, 30, 600, 5000),  # base fee 10 %
        "volatility": Volatility(0, 0, 0, 0),
        "x": ("B4rGSdcBrmLEPUQXpZa91PMsRE3GqNcjLd6EMvM3yaj2", TOKEN_2022_PROGRAM),
        "y": ("So11111111111111111111111111111111111111112", TOKEN_PROGRAM),
        "reserves": (
            "HmAJViUS3iMSzuedDs1z4QxAPitnK8oNC6dwAaNrRTBE",
            "2LAbjR3C5pWMVKh7HUWyEZ6wwubHwHB6B91vu5jaB3mr",
        ),
        "oracle": "HeC6TwhrT9eusRp8wMWuswpMAp1eUmr4mUB5csYMPsjU",
        "kind": (3, 0, 0, 0, 0),
        "bitmap": [-1, 0],
        "arrays": (-1, 0),
    },
    "9t3E": {
        "bin_step": 10,
        "active_id": 0,
        "fees": FeeParameters(10_000, 1, 50_000, 150_000, 10, 120, 5000),
        "volatility": Volatility(0, 0, 0, 0),
        "x": ("BBZU4HYvY4qMGE5MbWsVxGweGBZJqGRsgH8tAEAKusNk", TOKEN_PROGRAM),
        "y": ("31iVdsS8fkURXg737XQwYhXVAuGv2vNYHjyDiURStkaU", TOKEN_PROGRAM),
        "reserves": (
            "DDVpGjEz7Ay6QSyCJX5FpJhnYYYFUJ5kNdwy3ZrQP9u6",
            "9LqVUn45rtZqMmNSr7wSpJUy2Qqd6VE5q3QN7t7oJL8v",
        ),
        "oracle": "FviPunh9kSt1XRBdHiWd5FNdTe5MJmqGfSEQdNfHTQV4",
        "kind": (2, 0, 0, 2, 1),
        "bitmap": [-1, 0],
        "arrays": (-1, 0),
    },
}


def golden(pool: DlmmFixture) -> dict[str, object]:
    return GOLDEN[pool.name[:4]]


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
def test_decodes_the_pairs_fields(pool: DlmmFixture) -> None:
    pair, want = pool.pair(), golden(pool)
    assert (pair.bin_step, pair.active_id, pair.fees, pair.volatility) == (
        want["bin_step"],
        want["active_id"],
        want["fees"],
        want["volatility"],
    )
    assert (str(pair.token_x_mint), pair.token_x_program) == want["x"]
    assert (str(pair.token_y_mint), pair.token_y_program) == want["y"]
    assert (str(pair.reserve_x), str(pair.reserve_y)) == want["reserves"]
    assert str(pair.oracle) == want["oracle"]
    assert (
        pair.pair_type,
        pair.status,
        pair.activation_type,
        pair.function_type,
        pair.collect_fee_mode,
    ) == want["kind"]
    assert [k - 512 for k in range(1024) if pair.bin_array_bitmap >> k & 1] == want["bitmap"]
    assert pair.supports_limit_orders  # limit-order pairs, or undetermined without rewards
    # Every address the pair names is the manifest's.
    for name in ("token_x_mint", "token_y_mint", "reserve_x", "reserve_y", "oracle"):
        assert getattr(pair, name) == pool.accounts[name].address


def test_a_pair_opens_at_its_activation_point() -> None:
    pair = dlmm_fixture("9t3E").pair()  # customizable permissionless, activated by slot
    assert pair.activation_point == 448_432_755
    assert not pair.is_open(slot=448_432_754, timestamp=0)
    assert pair.is_open(slot=448_432_755, timestamp=0)
    assert not replace(pair, status=1).is_open(slot=10**12, timestamp=0)
    assert dlmm_fixture("EtAd").pair().is_open(slot=0, timestamp=0)  # permissionless: no activation


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
def test_decodes_the_bin_arrays_and_derives_their_addresses(pool: DlmmFixture) -> None:
    arrays = pool.bin_arrays()
    assert tuple(array.index for array in arrays) == golden(pool)["arrays"]
    for array in arrays:
        assert array.lb_pair == pool.address
        assert bin_array_address(pool.address, array.index) == array.address
        assert len(array.bins) == 70 and array.bin_ids()[0] == array.index * 70
    active = next(a for a in arrays if a.index == bin_array_index(pool.pair().active_id))
    assert active.bins[pool.pair().active_id - active.lower_bin_id].price > 0


def test_limit_orders_are_decoded_where_the_pool_holds_them() -> None:
    pool = dlmm_fixture("9t3E")
    bins = {i: b for array in pool.bin_arrays() for i, b in zip(array.bin_ids(), array.bins, strict=True)}
    # Bids resting below the active bin, asks above (raw u64s at 112 and 140 in each bin).
    assert (bins[-30].open_order_amount, bins[-30].limit_order_ask_side) == (1_000_000_000, False)
    assert (bins[1].open_order_amount, bins[1].limit_order_ask_side) == (1_000_000_000_000, True)
    book = dlmm_book(pool.pair(), pool.bin_arrays())
    assert book.limit_orders[1] == (0, 1_000_000_000_000, True) and len(book.limit_orders) == 60
    assert book.fee_in_y and not book.fees_stay_in_bins


def test_accounts_of_the_wrong_kind_are_refused() -> None:
    pool = dlmm_fixture("EtAd")
    with pytest.raises(NotADlmmAccount):
        decode_lb_pair(pool.address, pool.data("bin_array_1"))
    with pytest.raises(NotADlmmAccount):
        decode_bin_array(pool.address, pool.data("lb_pair"))
    with pytest.raises(NotADlmmAccount):
        decode_bitmap_extension(pool.address, pool.data("oracle"))


@pytest.mark.parametrize(("bin_id", "index"), [(0, 0), (69, 0), (70, 1), (-1, -1), (-70, -1), (-71, -2)])
def test_bin_array_index_floors(bin_id: int, index: int) -> None:
    assert bin_array_index(bin_id) == index


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
def test_bin_arrays_for_a_swap_follow_the_pairs_bitmap(pool: DlmmFixture) -> None:
    pair = pool.pair()
    bitmap = golden(pool)["bitmap"]
    assert isinstance(bitmap, list)
    start = bin_array_index(pair.active_id)
    assert bin_arrays_for_swap(pair, None, True) == sorted((i for i in bitmap if i <= start), reverse=True)
    assert bin_arrays_for_swap(pair, None, False) == sorted(i for i in bitmap if i >= start)
    assert set(bin_arrays_around(pair, None)) == set(bitmap)


def _with_bitmap(pair: LbPair, active_id: int, indexes: list[int]) -> LbPair:
    return replace(pair, active_id=active_id, bin_array_bitmap=sum(1 << (i + 512) for i in indexes))


def _extension(positive: list[int], negative: list[int]) -> BitmapExtension:
    return BitmapExtension(
        Pubkey.default(),
        Pubkey.default(),
        sum(1 << (i - 512) for i in positive),
        sum(1 << (-513 - i) for i in negative),
    )


def test_bin_arrays_for_a_swap_cross_into_and_out_of_the_extension() -> None:
    """Beyond ±512 bin arrays the extension's bitmap says which are initialized; the walk
    moves between both as the SDK's get_bin_array_pubkeys_for_swap does."""
    base = dlmm_fixture("EtAd").pair()
    extension = _extension(positive=[513, 598, 600, 6655], negative=[-513, -600, -700, -6656])
    pair = _with_bitmap(base, 600 * 70 + 5, [-512, -3, 3, 511])
    assert bin_arrays_for_swap(pair, extension, True, count=6) == [600, 598, 513, 511, 3, -3]
    assert bin_arrays_for_swap(pair, extension, False, count=6) == [600, 6655]
    pair = _with_bitmap(base, -700 * 70, [-512, -3, 3, 511])
    assert bin_arrays_for_swap(pair, extension, False, count=6) == [-700, -600, -513, -512, -3, 3]
    assert bin_arrays_for_swap(pair, extension, True, count=6) == [-700, -6656]
    pair = _with_bitmap(base, 5 * 70, [3, 511])
    assert bin_arrays_for_swap(pair, extension, False, count=3) == [511, 513, 598]
    assert bin_arrays_for_swap(pair, None, False, count=3) == [511]  # no extension: stop at the edge
    assert bin_arrays_for_swap(pair, extension, True) == [3, -513, -600]


def test_bitmap_extension_decodes_and_derives() -> None:
    pair = dlmm_fixture("EtAd").address
    data = bytearray(8 + 32 + 2 * 12 * 64)
    data[:8] = bytes([80, 111, 124, 113, 55, 237, 18, 5])  # idls/dlmm.json BinArrayBitmapExtension
    data[8:40] = bytes(pair)
    struct.pack_into("<Q", data, 40, 1 << 1)  # positive word 0: bin array 513
    struct.pack_into("<Q", data, 40 + 12 * 64, 1 << 2)  # negative word 0: bin array -515
    extension = decode_bitmap_extension(bitmap_extension_address(pair), bytes(data))
    assert extension.lb_pair == pair and (extension.positive, extension.negative) == (2, 4)
    assert (
        bitmap_extension_address(pair) == Pubkey.find_program_address([b"bitmap", bytes(pair)], PROGRAM_ID)[0]
    )


def _library_pool(pool: DlmmFixture) -> meteora_dlmm.PoolState:
    state: meteora_dlmm.PoolState = meteora_dlmm.PoolState.from_accounts(  # type: ignore[no-untyped-call]
        pool.data("lb_pair"), [pool.data("bin_array_1"), pool.data("bin_array_2")], 0, 0
    )
    return state


def _library_mint(mint: Mint) -> meteora_dlmm.MintInfo:
    if mint.program == TOKEN_PROGRAM:
        return meteora_dlmm.MintInfo(mint.decimals, False)
    info: meteora_dlmm.MintInfo = meteora_dlmm.parse_mint(mint.data, bytes(TOKEN_2022_PROGRAM))
    return info


def _amounts() -> list[int]:
    amounts, amount = [], 1
    while amount < 10**17:
        amounts.append(amount)
        amount = amount * 5 + 3
    return amounts


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
@pytest.mark.parametrize("swap_for_y", [True, False])
def test_exact_in_quotes_equal_the_librarys(pool: DlmmFixture, swap_for_y: bool) -> None:
    """From one base unit to beyond what the fixture's bin arrays hold: the same output to
    the base unit (Token-2022 transfer fees included), or incomplete where the library
    needs a bin array the fixture does not have."""
    pair = pool.pair()
    book = dlmm_book(pair, pool.bin_arrays())
    now = pair.last_update_timestamp + SECONDS_AFTER_LAST_UPDATE
    mint_x, mint_y = pool.mint("token_x_mint"), pool.mint("token_y_mint")
    fees = transfer_fees(pair, mint_x, mint_y, swap_for_y, EPOCH)
    library = _library_pool(pool)
    answered = refused = 0
    for amount in _amounts():
        ours = quote_exact_in(book, amount, swap_for_y, now, *fees)
        try:
            theirs = meteora_dlmm.quote_with_mints(  # type: ignore[no-untyped-call]
                library, amount, swap_for_y, _library_mint(mint_x), _library_mint(mint_y), timestamp=now
            )
        except meteora_dlmm.InsufficientBinArrays:
            assert not ours.complete, amount
            refused += 1
            continue
        assert ours.complete and ours.amount_out == theirs.amount_out, amount
        answered += 1
    assert answered > 10 and refused > 2  # both sides of the fixture's liquidity were reached


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
@pytest.mark.parametrize("swap_for_y", [True, False])
def test_exact_out_asks_the_least_input_that_delivers(pool: DlmmFixture, swap_for_y: bool) -> None:
    pair = pool.pair()
    book = dlmm_book(pair, pool.bin_arrays())
    now = pair.last_update_timestamp + SECONDS_AFTER_LAST_UPDATE
    fees = transfer_fees(pair, pool.mint("token_x_mint"), pool.mint("token_y_mint"), swap_for_y, EPOCH)
    liquidity = _liquidity_out(book, swap_for_y)
    checked = 0
    for wanted in [*_amounts(), liquidity * 99 // 100]:
        exact = quote_exact_out(book, wanted, swap_for_y, now, *fees)
        if not exact.complete:
            assert wanted > liquidity // 2, wanted
            continue
        assert exact.amount_out == wanted
        assert quote_exact_in(book, exact.amount_in, swap_for_y, now, *fees).amount_out >= wanted
        assert quote_exact_in(book, exact.amount_in - 1, swap_for_y, now, *fees).amount_out < wanted
        checked += 1
    assert checked > 10
    assert not quote_exact_out(book, liquidity + 1, swap_for_y, now, *fees).complete


def _liquidity_out(book: DlmmBook, swap_for_y: bool) -> int:
    """All a swap this way could take: market makers' amounts and the orders it fills."""
    market = sum(amounts[1 if swap_for_y else 0] for amounts in book.bins.values())
    orders = sum(p + o for p, o, ask in book.limit_orders.values() if ask != swap_for_y)
    return market + orders


def test_token_2022_transfer_fee_and_extensions() -> None:
    mint = dlmm_fixture("B5Ei").mint("token_x_mint")
    fee = transfer_fee(mint, EPOCH)
    assert fee is not None and (fee.epoch, fee.basis_points, fee.maximum_fee) == (835, 50, 5000)
    assert (fee.fee_on(1), fee.fee_on(200), fee.fee_on(201), fee.fee_on(10**9)) == (1, 1, 2, 5000)
    for received in (1, 199, 200, 12_345, 999_000, 10**9):
        sent = fee.amount_before_fee(received)
        assert sent - fee.fee_on(sent) >= received > sent - 1 - fee.fee_on(sent - 1)
    assert unsupported_extensions(mint) == []  # fee config, metadata pointer, metadata
    assert transfer_fee(dlmm_fixture("EtAd").mint("token_x_mint"), EPOCH) is None


def _with_extension(mint: Mint, kind: int, value: bytes) -> Mint:
    data = mint.data + struct.pack("<HH", kind, len(value)) + value
    return replace(mint, data=data)


def test_mints_we_cannot_trade_are_named() -> None:
    mint = dlmm_fixture("B5Ei").mint("token_x_mint")
    hook = bytes(32) + bytes(Pubkey.new_unique())
    assert unsupported_extensions(_with_extension(mint, 14, hook)) == ["transfer hook"]
    assert unsupported_extensions(_with_extension(mint, 14, bytes(64))) == []  # no hook program
    assert unsupported_extensions(_with_extension(mint, 9, b"")) == ["non-transferable"]
    assert unsupported_extensions(_with_extension(mint, 26, bytes(32) + b"\x01")) == ["paused"]
    assert unsupported_extensions(_with_extension(mint, 26, bytes(32) + b"\x00")) == []
    assert unsupported_extensions(_with_extension(mint, 99, b"")) == ["extension 99"]


def test_swap2_instruction_golden() -> None:
    """Discriminator: sha256("global:swap2")[:8], as idls/dlmm.json 4090-4092 gives it;
    accounts in the order and writability of idls/dlmm.json 4093-4170 (event authority:
    4154-4167; the Swap2 struct, dlmm-sdk programs/lb_clmm/src/instructions/v2/swap2.rs
    13-61 at b65bd20); args 4171-4188."""
    pool = dlmm_fixture("EtAd")
    pair = pool.pair()
    user, user_in, user_out = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    arrays = [bin_array_address(pair.address, 0), bin_array_address(pair.address, -1)]
    instruction = swap2_instruction(pair, user, user_in, user_out, 1_000_000, 990_000, arrays)
    assert instruction.program_id == PROGRAM_ID
    assert instruction.data == bytes([65, 75, 63, 76, 235, 91, 91, 136]) + struct.pack(
        "<QQI", 1_000_000, 990_000, 0
    )
    expected = [
        (pair.address, False, True),  # lb_pair
        (PROGRAM_ID, False, False),  # bin_array_bitmap_extension: absent
        (pair.reserve_x, False, True),
        (pair.reserve_y, False, True),
        (user_in, False, True),
        (user_out, False, True),
        (pair.token_x_mint, False, False),
        (pair.token_y_mint, False, False),
        (pair.oracle, False, True),
        (PROGRAM_ID, False, False),  # host_fee_in: absent
        (user, True, False),
        (TOKEN_PROGRAM, False, False),
        (TOKEN_PROGRAM, False, False),
        (MEMO_PROGRAM_ID, False, False),
        (EVENT_AUTHORITY, False, False),
        (PROGRAM_ID, False, False),
        (arrays[0], False, True),
        (arrays[1], False, True),
    ]
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in instruction.accounts] == expected
    assert (
        str(EVENT_AUTHORITY) == "D1ZN9Wj1fRSUQfCjhvnu1hqDMT7hzjzBBpi12nVniYD6"
    )  # seeds [b"__event_authority"]
    assert str(MEMO_PROGRAM_ID) == "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"  # idls/dlmm.json 4150-4152


def test_swap_exact_out2_instruction_golden() -> None:
    """idls/dlmm.json 4282-4284 (discriminator), 4285-4362 (accounts), 4363-4380 (args:
    max_in_amount, out_amount, remaining_accounts_info)."""
    pair = dlmm_fixture("B5Ei").pair()
    user, user_in, user_out = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    extension, host = Pubkey.new_unique(), Pubkey.new_unique()
    instruction = swap_exact_out2_instruction(
        pair, user, user_in, user_out, 5_000, 4_000, [], bitmap_extension=extension, host_fee_in=host
    )
    assert instruction.data == bytes([43, 215, 247, 132, 137, 60, 243, 81]) + struct.pack(
        "<QQI", 5_000, 4_000, 0
    )
    metas = [(m.pubkey, m.is_signer, m.is_writable) for m in instruction.accounts]
    assert metas[1] == (extension, False, True) and metas[9] == (host, False, True)
    assert metas[11:13] == [(TOKEN_2022_PROGRAM, False, False), (TOKEN_PROGRAM, False, False)]
    assert len(metas) == 16


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (6003, MarketErrorCode.SLIPPAGE_EXCEEDED),  # ExceededAmountSlippageTolerance
        (6104, MarketErrorCode.SLIPPAGE_EXCEEDED),  # InsufficientInAmount (exact out)
        (6036, MarketErrorCode.INSUFFICIENT_LIQUIDITY),  # the walk ran out of bin arrays
        (6012, MarketErrorCode.INSUFFICIENT_LIQUIDITY),  # PairInsufficientLiquidity
        (6042, MarketErrorCode.POOL_NOT_OPEN),  # PoolDisabled
        (6010, MarketErrorCode.INVALID_ORDER),  # InvalidTokenMint: not mapped
    ],
)
def test_program_errors_map_to_our_failure_codes(code: int, failure: MarketErrorCode) -> None:
    assert program_error(code) == failure


def test_writes_replace_only_what_they_name() -> None:
    pool = dlmm_fixture("EtAd")
    data = pool.data("bin_array_1")  # bin array 0
    written = write_bin_amounts(data, {15: (1, 2), 69: (3, 4)})
    array = decode_bin_array(pool.accounts["bin_array_1"].address, written)
    assert (array.bins[15].amount_x, array.bins[15].amount_y, array.bins[69].amount_y) == (1, 2, 4)
    assert array.bins[15].price == decode_bin_array(array.address, data).bins[15].price
    assert sum(a != b for a, b in zip(data, written, strict=True)) <= 32
    with pytest.raises(ValueError):
        write_bin_amounts(data, {70: (0, 0)})
    pair = decode_lb_pair(pool.address, write_lb_pair_state(pool.data("lb_pair"), -3, Volatility(7, 6, 5, 4)))
    assert (pair.active_id, pair.volatility) == (-3, Volatility(7, 6, 5, 4))
    assert replace(pair, active_id=15, volatility=pool.pair().volatility) == pool.pair()


class FixtureNode:
    """The fixture's accounts, plus the user's two token accounts (copies of the reserves)."""

    def __init__(self, pool: DlmmFixture, balance: int = 10**18) -> None:
        self.user = Pubkey.new_unique()
        self.accounts = {a.address: a.data for a in pool.accounts.values() if a.data is not None}
        self.accounts[pool.accounts["token_y_mint"].address] = pool.mint("token_y_mint").data
        self.user_x, self.user_y = Pubkey.new_unique(), Pubkey.new_unique()
        for key, reserve in ((self.user_x, "reserve_x"), (self.user_y, "reserve_y")):
            data = bytearray(pool.data(reserve))
            data[32:64] = bytes(self.user)
            struct.pack_into("<Q", data, 64, balance)
            self.accounts[key] = bytes(data)

    def read(self, key: Pubkey) -> bytes | None:
        return self.accounts.get(key)


def _swap(
    pool: DlmmFixture, node: FixtureNode, swap_for_y: bool, first: int, second: int, exact_out: bool = False
) -> tuple[bytes, list[Pubkey], int]:
    """The instruction's data and accounts, and a clock 45 s after the pair's last update."""
    pair = pool.pair()
    arrays = [a.address for a in pool.bin_arrays()]
    user_in, user_out = (node.user_x, node.user_y) if swap_for_y else (node.user_y, node.user_x)
    build = swap_exact_out2_instruction if exact_out else swap2_instruction
    instruction = build(pair, node.user, user_in, user_out, first, second, arrays)
    now = pair.last_update_timestamp + SECONDS_AFTER_LAST_UPDATE
    return bytes(instruction.data), [m.pubkey for m in instruction.accounts], now


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
@pytest.mark.parametrize("swap_for_y", [True, False])
def test_the_emulated_swap2_moves_the_quoted_amounts(pool: DlmmFixture, swap_for_y: bool) -> None:
    pair, node = pool.pair(), FixtureNode(pool)
    book = dlmm_book(pair, pool.bin_arrays())
    now = pair.last_update_timestamp + SECONDS_AFTER_LAST_UPDATE
    fees = transfer_fees(pair, pool.mint("token_x_mint"), pool.mint("token_y_mint"), swap_for_y, 2**63 - 1)
    side = 1 if swap_for_y else 0
    amount_in = quote_exact_out(
        book, sum(a[side] for a in book.bins.values()) // 3, swap_for_y, now, *fees
    ).amount_in
    quote = quote_exact_in(book, amount_in, swap_for_y, now, *fees)
    data, keys, now = _swap(pool, node, swap_for_y, amount_in, quote.amount_out)
    effect = meteora_dlmm_program(data, keys, node.read, now)
    user_in, user_out = (node.user_x, node.user_y) if swap_for_y else (node.user_y, node.user_x)
    reserve_in, reserve_out = (
        (pair.reserve_x, pair.reserve_y) if swap_for_y else (pair.reserve_y, pair.reserve_x)
    )
    assert effect.moves == (
        TokenMove(user_in, reserve_in, amount_in, node.user),
        TokenMove(reserve_out, user_out, quote.swap.amount_out, pair.address),
    )
    # What the user receives after the output's transfer fee is the quote.
    assert quote.swap.amount_out - quote.transfer_fee_out == quote.amount_out
    after = book.after(quote.swap)
    written = decode_lb_pair(pair.address, effect.writes[pair.address])
    assert (written.active_id, written.volatility) == (after.active_id, after.volatility)
    for array in pool.bin_arrays():
        if array.address in effect.writes:
            new = decode_bin_array(array.address, effect.writes[array.address])
            assert {i: (b.amount_x, b.amount_y) for i, b in zip(new.bin_ids(), new.bins, strict=True)} == {
                i: after.bins[i] for i in array.bin_ids()
            }
    with pytest.raises(ProgramFailure) as failure:
        meteora_dlmm_program(
            *_swap(pool, node, swap_for_y, amount_in, quote.amount_out + 1)[:2], node.read, now
        )
    assert failure.value.code == 6003
    assert program_error(failure.value.code) == MarketErrorCode.SLIPPAGE_EXCEEDED


@pytest.mark.parametrize("pool", POOLS, ids=IDS)
def test_the_emulated_exact_out_takes_the_quoted_input_or_fails(pool: DlmmFixture) -> None:
    pair, node = pool.pair(), FixtureNode(pool)
    book = dlmm_book(pair, pool.bin_arrays())
    now = pair.last_update_timestamp + SECONDS_AFTER_LAST_UPDATE
    fees = transfer_fees(pair, pool.mint("token_x_mint"), pool.mint("token_y_mint"), False, 2**63 - 1)
    wanted = sum(a[0] for a in book.bins.values()) // 10
    quote = quote_exact_out(book, wanted, False, now, *fees)
    effect = meteora_dlmm_program(
        *_swap(pool, node, False, quote.amount_in, wanted, True)[:2], node.read, now
    )
    assert [move.amount for move in effect.moves] == [quote.amount_in, quote.swap.amount_out]
    assert quote.swap.amount_out - quote.transfer_fee_out == wanted
    with pytest.raises(ProgramFailure) as failure:
        meteora_dlmm_program(*_swap(pool, node, False, quote.amount_in - 1, wanted, True)[:2], node.read, now)
    assert program_error(failure.value.code) == MarketErrorCode.SLIPPAGE_EXCEEDED


def test_the_emulation_runs_out_of_liquidity_as_the_program_does() -> None:
    pool, node = dlmm_fixture("B5Ei"), FixtureNode(dlmm_fixture("B5Ei"))
    data, keys, now = _swap(pool, node, True, 10**15, 0)
    with pytest.raises(ProgramFailure) as failure:
        meteora_dlmm_program(data, keys, node.read, now)
    assert failure.value.code == 6036
    assert program_error(failure.value.code) == MarketErrorCode.INSUFFICIENT_LIQUIDITY
    # A bin array the walk reaches but the instruction does not name: the program's 3005.
    data, keys, now = _swap(pool, node, True, 10**15, 0)
    without_array_minus_one = [k for k in keys if k != bin_array_address(pool.address, -1)]
    with pytest.raises(ProgramFailure) as failure:
        meteora_dlmm_program(data, without_array_minus_one, node.read, now)
    assert failure.value.code == 3005


def test_a_swap_from_an_uninitialized_bin_array_starts_at_the_next_one() -> None:
    """The active bin in a bin array nobody initialized (bin 200: array 2; the bitmap says
    arrays -1 and 0): selling X walks down from the top of array 0 as the program does."""
    pool = dlmm_fixture("EtAd")
    pair = _with_bitmap(pool.pair(), 200, [-1, 0])
    assert bin_arrays_for_swap(pair, None, True) == [0, -1]
    book = dlmm_book(pair, pool.bin_arrays())
    now = pair.last_update_timestamp + SECONDS_AFTER_LAST_UPDATE
    walk = quote_exact_in(book, 10**9, True, now).swap
    assert walk.complete and walk.amount_out > 0 and max(walk.bins) <= 69
