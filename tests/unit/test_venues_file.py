"""The venues file (ORDER_ENGINE_VENUES_FILE): the issue's TOML shape loads as written,
and every malformed file is refused with a VenuesFileError that says where and why, so
an operator can fix it without reading the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from core.domain import Dex
from onchain.venues_file import (
    PoolEntry,
    VenueKind,
    VenuesFile,
    VenuesFileError,
    load_venues_file,
)

SOL_MINT = "So11111111111111111111111111111111111111112"
PUMP_MINT = "Df6yfrKC8kZE3KNkrHERKzAetSxbrWeniQfyJY4Jpump"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
DLMM_POOL = "EtAdVRLFH22rjWh3mcUasKFF27WtHhsaCvK27tPFFWig"
CPMM_POOL = "7JuwJuNU88gurFnyWeiyGKbFmExMWcmRZntn9imEzdny"
TIP = "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5"

# Exactly the shape issue 22 gives, comments included.
ISSUE_EXAMPLE = f"""[tokens.SOL]
mint = "{SOL_MINT}"
[tokens.PUMP]
mint = "{PUMP_MINT}"
[[pools]]
venue = "meteora_dlmm"            # or "raydium_cpmm"
address = "{DLMM_POOL}"
[landing]
tip_accounts = []                 # optional: block-engine tip accounts
"""

TOKENS = f"""[tokens.SOL]
mint = "{SOL_MINT}"
[tokens.PUMP]
mint = "{PUMP_MINT}"
"""
ONE_POOL = f"""[[pools]]
venue = "meteora_dlmm"
address = "{DLMM_POOL}"
"""


def load(tmp_path: Path, text: str) -> VenuesFile:
    path = tmp_path / "venues.toml"
    path.write_text(text)
    return load_venues_file(path)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(VenuesFileError) as raised:
        load(tmp_path, text)
    message = str(raised.value)
    assert str(tmp_path / "venues.toml") in message  # which file
    return message


def test_the_issues_example_loads_as_written(tmp_path: Path) -> None:
    venues = load(tmp_path, ISSUE_EXAMPLE)
    assert venues.tokens == {"SOL": Pubkey.from_string(SOL_MINT), "PUMP": Pubkey.from_string(PUMP_MINT)}
    assert venues.pools == (PoolEntry(VenueKind.METEORA_DLMM, Pubkey.from_string(DLMM_POOL)),)
    assert venues.tip_accounts == ()
    assert venues.symbol_of(Pubkey.from_string(PUMP_MINT)) == "PUMP"
    assert venues.symbol_of(Pubkey.from_string(USDC_MINT)) is None


def test_both_venues_several_pools_and_tip_accounts_load_in_file_order(tmp_path: Path) -> None:
    venues = load(
        tmp_path,
        TOKENS
        + f"""[tokens.USDC]
mint = "{USDC_MINT}"
[[pools]]
venue = "raydium_cpmm"
address = "{CPMM_POOL}"
[[pools]]
venue = "meteora_dlmm"
address = "{DLMM_POOL}"
[landing]
tip_accounts = ["{TIP}"]
""",
    )
    assert [(p.venue, str(p.address)) for p in venues.pools] == [
        (VenueKind.RAYDIUM_CPMM, CPMM_POOL),
        (VenueKind.METEORA_DLMM, DLMM_POOL),
    ]
    assert [p.venue.dex for p in venues.pools] == [Dex.RAYDIUM, Dex.METEORA]
    assert venues.tip_accounts == (Pubkey.from_string(TIP),)
    assert set(venues.tokens) == {"SOL", "PUMP", "USDC"}


def test_landing_may_be_left_out(tmp_path: Path) -> None:
    assert load(tmp_path, TOKENS + ONE_POOL).tip_accounts == ()


def test_a_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(VenuesFileError, match="cannot read it"):
        load_venues_file(tmp_path / "absent.toml")


def test_a_file_that_is_not_text_is_refused_as_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "venues.toml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(VenuesFileError, match="not valid TOML"):
        load_venues_file(path)


def test_bad_toml_is_refused_with_the_parsers_line(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + '[[pools]]\nvenue = "meteora_dlmm\n')
    assert "not valid TOML" in message and "line 6" in message


def test_an_unknown_section_is_named(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + ONE_POOL + "[pool]\nx = 1\n")
    assert "unknown section" in message and "pool" in message


def test_no_tokens_at_all_is_refused(tmp_path: Path) -> None:
    assert "[tokens.SYMBOL]" in refused(tmp_path, ONE_POOL)


def test_a_token_without_mint_names_the_token(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + "[tokens.USDC]\naddress = 'x'\n" + ONE_POOL)
    assert "[tokens.USDC]" in message and "mint" in message


def test_a_token_with_more_than_its_mint_names_the_token(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + f'[tokens.USDC]\nmint = "{USDC_MINT}"\ndecimals = 6\n' + ONE_POOL)
    assert "[tokens.USDC]" in message


@pytest.mark.parametrize("symbol", ['"S O L"', '"ABCDEFGHIJKLMNOPQ"', '"USDC\\n"'])
def test_a_symbol_that_is_not_1_to_16_letters_or_digits_is_refused(tmp_path: Path, symbol: str) -> None:
    message = refused(tmp_path, TOKENS + f'[tokens.{symbol}]\nmint = "{USDC_MINT}"\n' + ONE_POOL)
    assert "token symbol" in message and "1-16 letters or digits" in message


@pytest.mark.parametrize(
    ("mint", "why"),
    [
        ('"0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl"', "is not a base58 address"),  # not base58
        ('"1111"', "is not a base58 address"),  # base58, but not 32 bytes
        ("42", "must be a base58 address string"),
    ],
)
def test_a_mint_that_is_not_an_address_names_the_token(tmp_path: Path, mint: str, why: str) -> None:
    message = refused(tmp_path, TOKENS + f"[tokens.USDC]\nmint = {mint}\n" + ONE_POOL)
    assert "tokens.USDC.mint" in message and why in message


def test_two_symbols_of_one_mint_name_both(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + f'[tokens.PUMP2]\nmint = "{PUMP_MINT}"\n' + ONE_POOL)
    assert "same mint" in message and "tokens.PUMP" in message and "tokens.PUMP2" in message


def test_sol_must_be_the_native_mint(tmp_path: Path) -> None:
    text = f'[tokens.SOL]\nmint = "{USDC_MINT}"\n[tokens.PUMP]\nmint = "{PUMP_MINT}"\n' + ONE_POOL
    assert "[tokens.SOL] must be the native mint" in refused(tmp_path, text)


def test_sol_must_be_listed(tmp_path: Path) -> None:
    text = f'[tokens.PUMP]\nmint = "{PUMP_MINT}"\n' + ONE_POOL
    assert "[tokens.SOL] must be the native mint" in refused(tmp_path, text)


def test_a_file_without_pools_is_refused(tmp_path: Path) -> None:
    assert "at least one [[pools]] entry" in refused(tmp_path, TOKENS)


def test_an_unknown_venue_lists_the_choices(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + f'[[pools]]\nvenue = "orca_whirlpool"\naddress = "{DLMM_POOL}"\n')
    assert "pools #1" in message and "'orca_whirlpool'" in message
    assert "meteora_dlmm" in message and "raydium_cpmm" in message


def test_a_pool_without_an_address_is_numbered(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + ONE_POOL + '[[pools]]\nvenue = "raydium_cpmm"\n')
    assert "pools #2" in message and "`venue` and `address`" in message


def test_a_pool_address_that_is_not_base58_is_numbered(tmp_path: Path) -> None:
    message = refused(tmp_path, TOKENS + ONE_POOL + '[[pools]]\nvenue = "raydium_cpmm"\naddress = "0x12"\n')
    assert "pools #2.address" in message and "'0x12'" in message


def test_a_pool_listed_twice_names_it_and_both_entries(tmp_path: Path) -> None:
    twice = f'[[pools]]\nvenue = "raydium_cpmm"\naddress = "{DLMM_POOL}"\n'
    message = refused(tmp_path, TOKENS + ONE_POOL + twice)
    assert "pools #2" in message and DLMM_POOL in message and "pools #1" in message


@pytest.mark.parametrize(
    ("landing", "why"),
    [
        ('tip_accounts = "one"', "landing.tip_accounts must be a list"),
        ('tip_accounts = ["nope0"]', "landing.tip_accounts[0]"),
        (f'tip_accounts = ["{TIP}", 7]', "landing.tip_accounts[1]"),
        ("jito = true", "[landing] may hold only `tip_accounts`"),
    ],
)
def test_bad_tip_accounts_are_refused(tmp_path: Path, landing: str, why: str) -> None:
    assert why in refused(tmp_path, TOKENS + ONE_POOL + f"[landing]\n{landing}\n")
