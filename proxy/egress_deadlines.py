"""Deadlines for the egress proxy's clients (slowloris, slow bodies), as the gateway has
(`header_deadline`, `body_deadline`): mitmproxy itself only closes a connection after 10
minutes without a byte.

A connection gets `header_timeout_s` from when it opens (or its CONNECT is answered) to
send a request's headers; with no request in flight, the keep-alive allowance (75 s, as
aiohttp's) plus `header_timeout_s` for the next one; once a request's headers are in,
`body_timeout_s` for its body. Past a deadline the connection is closed. mitmproxy has no
hook for this: the addon closes the connection through the proxy server's handler for it
(`Proxyserver.connections`, `close_connection`); tests/test_egress_deadlines.py breaks if
they change. Add it before the addons whose hooks wait (a `request` hook that asks the
upstream must not run on the body's clock).
"""

from __future__ import annotations

import asyncio
from typing import Any

from mitmproxy import connection, http

KEEP_ALIVE_S = 75.0  # an idle kept-alive connection's allowance, as the gateway's aiohttp


class EgressDeadlines:
    """The addon: one timer per connection (headers, idle) and per request (its body)."""

    def __init__(self, server: Any, header_timeout_s: float, body_timeout_s: float) -> None:
        self._server = server  # mitmproxy's Proxyserver addon
        self._header_s = header_timeout_s
        self._body_s = body_timeout_s
        self._timers: dict[str, asyncio.TimerHandle] = {}  # client or flow id -> timer
        self._in_flight: dict[str, set[str]] = {}  # client id -> ids of its open requests

    def _arm(self, key: str, delay: float, client: connection.Client) -> None:
        self._disarm(key)
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._expire, client)

    def _disarm(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, client: connection.Client) -> None:
        """Close the client's connection (and with it, whatever it has in flight)."""
        for handler in list(self._server.connections.values()):
            if handler.client is client:
                handler.close_connection(handler.client)
                return

    def _done(self, flow: http.HTTPFlow) -> None:
        """A request answered or failed: with none left in flight, the connection idles."""
        client = flow.client_conn
        self._disarm(flow.id)
        open_ids = self._in_flight.get(client.id)
        if open_ids is None or flow.id not in open_ids:
            return
        open_ids.discard(flow.id)
        if not open_ids:
            self._arm(client.id, KEEP_ALIVE_S + self._header_s, client)

    # mitmproxy's hooks

    def client_connected(self, client: connection.Client) -> None:
        self._in_flight[client.id] = set()
        self._arm(client.id, self._header_s, client)

    def client_disconnected(self, client: connection.Client) -> None:
        for flow_id in self._in_flight.pop(client.id, set()):
            self._disarm(flow_id)
        self._disarm(client.id)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A tunnel: its TLS handshake and first request's headers, on the header clock."""
        self._arm(flow.client_conn.id, self._header_s, flow.client_conn)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        client = flow.client_conn
        self._disarm(client.id)
        self._in_flight.setdefault(client.id, set()).add(flow.id)
        self._arm(flow.id, self._body_s, client)

    def request(self, flow: http.HTTPFlow) -> None:
        self._disarm(flow.id)  # the body is in

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:  # a WebSocket stays open until it ends
            self._done(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._done(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._done(flow)
