"""How a model API call seen by the egress proxy re-enters the gateway: the proxy parks the
principal and the upstream route under a single-use random ticket, forwards the request to
the gateway on loopback with the ticket in a header, and the gateway takes both back.

The agent never sees a ticket and cannot forge one (128 random bits, used once), so the
principal still comes from lictor's own configuration or the agent's proxy credential.
"""

from __future__ import annotations

import secrets
import ssl
import time
from dataclasses import dataclass

from aiohttp import web

from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.backends.passthrough import PassthroughBackend
from lictor.enforcement.types import Principal

TICKET_HEADER = "x-lictor-egress-ticket"
TICKET_TTL_S = 60.0  # a ticket not taken back by then is dropped (the request never came)


@dataclass(slots=True, frozen=True)
class Ticket:
    principal: Principal
    route: Route  # the original destination and lictor's credential for it
    expires: float


class EgressLink:
    """Shared by the egress proxy (which parks tickets) and the gateway (which takes them)."""

    __slots__ = ("_tickets", "backend")

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._tickets: dict[str, Ticket] = {}
        self.backend: Backend = PassthroughBackend(ssl_context)  # upstream certs verified

    def park(self, principal: Principal, route: Route) -> str:
        now = time.monotonic()
        if len(self._tickets) > 1024:
            self._tickets = {k: t for k, t in self._tickets.items() if t.expires > now}
        ticket = secrets.token_urlsafe(16)
        self._tickets[ticket] = Ticket(principal, route, now + TICKET_TTL_S)
        return ticket

    def take(self, request: web.Request) -> Ticket | None:
        """The ticket a request carries, removed (single use), or None."""
        value = request.headers.get(TICKET_HEADER)
        if not value:
            return None
        ticket = self._tickets.pop(value, None)
        if ticket is None or ticket.expires < time.monotonic():
            return None
        request[_TICKET_KEY] = ticket
        return ticket

    @staticmethod
    def taken(request: web.Request) -> Ticket | None:
        return request.get(_TICKET_KEY)

    async def aclose(self) -> None:
        await self.backend.aclose()


_TICKET_KEY = web.RequestKey("lictor.egress_ticket", Ticket)
