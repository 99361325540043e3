"""Who the client is behind a proxy: the peer's address, unless the peer is a proxy the
operator trusts (ORDER_ENGINE_TRUSTED_PROXIES); then the right-most address of
X-Forwarded-For that is not a trusted proxy. Each proxy appends the address it was
called from, so everything left of that one may have been written by the client itself."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.types import ASGIApp, Receive, Scope, Send

Network = IPv4Network | IPv6Network
# An X-Forwarded-For entry longer than this is no address (and would only grow maps).
MAX_ENTRY = 64


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_behind(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address, from the peer and every X-Forwarded-For header's value."""
    if not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop[:MAX_ENTRY]
    # Every hop is a trusted proxy: the left-most is as far back as anyone can tell.
    return hops[0][:MAX_ENTRY] if hops else peer


class ForwardedClient:
    """Sets the ASGI scope's client (what `request.client` and the failed-auth limit
    read) to the address behind the trusted proxies, for requests and WebSockets."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            forwarded = [
                value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
            ]
            if forwarded:
                host = client_behind(client[0], forwarded, self.trusted)
                if host != client[0]:
                    scope = {**scope, "client": (host, 0)}
        await self.app(scope, receive, send)
