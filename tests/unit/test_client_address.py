"""The client's address behind proxies: X-Forwarded-For counts only from a trusted peer,
and then its right-most entry that is not a trusted proxy."""

from __future__ import annotations

import pytest

from api.client_address import client_behind
from core.settings import Settings

TRUSTED = Settings(ORDER_ENGINE_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1, ::1").trusted_proxy_networks


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a trusted peer: its header is anyone's
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["1.2.3.4, 198.51.100.1"], "198.51.100.1"),  # left of it: what the client wrote
        ("127.0.0.1", ["198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # through two trusted proxies
        ("127.0.0.1", ["1.2.3.4", "198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # several headers
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("127.0.0.1", ["10.0.0.2, 10.0.0.3"], "10.0.0.2"),  # only proxies: the left-most
        ("127.0.0.1", [" , "], "127.0.0.1"),
    ],
)
def test_the_client_behind_trusted_proxies(peer: str, forwarded_for: list[str], client: str) -> None:
    assert client_behind(peer, forwarded_for, TRUSTED) == client


def test_nothing_is_trusted_without_the_setting() -> None:
    assert client_behind("127.0.0.1", ["198.51.100.1"], Settings().trusted_proxy_networks) == "127.0.0.1"


def test_a_proxy_list_that_is_not_addresses_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings(ORDER_ENGINE_TRUSTED_PROXIES="10.0.0.1, proxy.internal")
