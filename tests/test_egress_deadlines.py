"""The egress proxy's client deadlines: a connection that trickles its headers or its body
is closed at `limits.header_timeout_s` / `limits.body_timeout_s`, as the gateway's are,
not after mitmproxy's 10 minutes without a byte; requests that keep time, a kept-alive
connection between requests and a WebSocket are left alone.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from egress_setup import Egress, running_egress
from test_egress import test_ca, tools  # noqa: F401 (fixtures)
from tls_certs import CertAuthority
from tool_server import ToolServer

DEADLINE_S = 0.6


@pytest.fixture
def egress(tmp_path: Path, test_ca: CertAuthority,  # noqa: F811
           tools: ToolServer) -> Iterator[Egress]:  # noqa: F811
    limits = {"header_timeout_s": DEADLINE_S, "body_timeout_s": DEADLINE_S}
    with running_egress(tmp_path, test_ca, [tools.host], limits=limits) as running:
        yield running


def closed_after(egress: Egress, sent: bytes) -> float:
    """Seconds until the proxy closes a connection that sent `sent` and then nothing."""
    assert egress.proxy.address is not None
    with socket.create_connection(egress.proxy.address, timeout=20) as conn:
        start = time.monotonic()
        conn.sendall(sent)
        try:
            while conn.recv(4096):
                pass
        except ConnectionResetError:
            pass
        return time.monotonic() - start


@pytest.mark.parametrize("sent", [b"", b"GET http://example.test/ HTTP/1.1\r\nHost: exa"],
                         ids=["nothing", "half the headers"])
def test_slow_headers_close_the_connection(egress: Egress, sent: bytes) -> None:
    assert DEADLINE_S - 0.1 < closed_after(egress, sent) < 10


def test_a_slow_body_closes_the_connection(egress: Egress,
                                          tools: ToolServer) -> None:  # noqa: F811
    head = (f"POST http://{tools.host}/echo HTTP/1.1\r\nHost: {tools.host}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    assert DEADLINE_S - 0.1 < closed_after(egress, head + b'{"a": ') < 10
    assert tools.seen == []


def test_prompt_clients_idle_connections_and_websockets_are_left_alone(
        egress: Egress, tools: ToolServer) -> None:  # noqa: F811
    """Two requests on one kept-alive tunnel, the second after twice the header deadline,
    both answered; a WebSocket stays open past both deadlines."""
    assert egress.proxy.address is not None
    host, port = tools.host.split(":")
    conn = http.client.HTTPSConnection(*egress.proxy.address, timeout=20,
                                       context=ssl.create_default_context(
                                           cafile=str(egress.ca_cert)))
    conn.set_tunnel(host, int(port))
    try:
        for _ in range(2):  # http.client never reconnects: a closed tunnel would raise
            conn.request("GET", "/weather?city=Oslo")
            assert conn.getresponse().read() and conn.sock is not None
            time.sleep(2 * DEADLINE_S)
    finally:
        conn.close()
    assert len(tools.seen) == 2

    async def slow_chat() -> list[str]:
        ctx = ssl.create_default_context(cafile=str(egress.ca_cert))
        answers = []
        async with aiohttp.ClientSession() as session, session.ws_connect(
                tools.base.replace("https", "wss") + "/ws", proxy=egress.proxy_url,
                ssl=ctx) as ws:
            for word in ("one", "two"):
                await ws.send_str(word)
                answers.append((await ws.receive(timeout=10)).data)
                await asyncio.sleep(2 * DEADLINE_S)
        return answers

    assert asyncio.run(slow_chat()) == ["echo: one", "echo: two"]
