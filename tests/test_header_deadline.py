"""The per-connection header deadline (slowloris), against lictor on a loopback port with
raw sockets: a connection dribbling its headers past `limits.header_timeout_s` is closed
with a 408, others are served meanwhile, and kept-alive idle connections are left alone."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lictor.proxy.config import ConfigError, load_config
from lictor.proxy.server import BackgroundServer

DEADLINE_S = 1.0
GET = b"GET /healthz HTTP/1.1\r\nHost: lictor\r\n\r\n"


@pytest.fixture(scope="module")
def lictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    config = load_config(None, {
        "server": {"host": "127.0.0.1", "port": 0},
        "data_dir": str(tmp_path_factory.mktemp("deadline") / "var"),
        "limits": {"header_timeout_s": DEADLINE_S},
    })
    with BackgroundServer(config) as server:
        yield server


def _connect(server: BackgroundServer) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(sock: socket.socket) -> bytes:
    """One whole response to GET /healthz (headers and its Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before an answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_dribbling_client_is_closed_and_others_are_served(lictor: BackgroundServer) -> None:
    started = time.monotonic()  # the deadline counts from the connection's opening
    slow = _connect(lictor)
    outcome: dict[str, object] = {}

    def dribble() -> None:
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: lictor\r\nX-Slow: " + b"a" * 200:
                slow.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:  # the server closed it: what the client sees next is the answer
            pass
        outcome["after_s"] = time.monotonic() - started
        outcome["answer"] = _read_all(slow)

    thread = threading.Thread(target=dribble)
    thread.start()
    served = []
    while thread.is_alive() and len(served) < 50:  # other connections, while it dribbles
        served.append(requests.get(f"{lictor.url}/healthz", timeout=5).status_code)
        time.sleep(0.05)
    thread.join(30)
    slow.close()
    assert served and set(served) == {200}
    assert isinstance(outcome["answer"], bytes)
    assert outcome["answer"].startswith(b"HTTP/1.1 408 Request Timeout")
    assert DEADLINE_S <= float(outcome["after_s"]) < DEADLINE_S + 2  # type: ignore[arg-type]


def test_a_silent_connection_is_closed_without_an_answer(lictor: BackgroundServer) -> None:
    started = time.monotonic()  # before: the server may arm its timer before connect returns
    sock = _connect(lictor)
    assert _read_all(sock) == b""  # nothing was asked: nothing to answer
    assert DEADLINE_S <= time.monotonic() - started < DEADLINE_S + 2
    sock.close()


def test_kept_alive_idle_connections_are_left_alone(lictor: BackgroundServer) -> None:
    """The deadline counts from a request's first byte: a kept-alive connection idle for
    longer than it still serves its next request, and a fast request is never cut."""
    sock = _connect(lictor)
    sock.sendall(GET)
    assert _answer(sock).startswith(b"HTTP/1.1 200")
    time.sleep(DEADLINE_S * 1.6)
    sock.sendall(GET)
    assert _answer(sock).startswith(b"HTTP/1.1 200")
    # and a next request dribbled too slowly on it is still cut
    started = time.monotonic()  # before: the timer may start before sendall returns
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    assert _read_all(sock).startswith(b"HTTP/1.1 408")
    assert DEADLINE_S <= time.monotonic() - started < DEADLINE_S + 2
    sock.close()


def test_a_request_whose_headers_arrived_is_not_cut(lictor: BackgroundServer) -> None:
    """Once the headers are in, the deadline is off: a body sent over longer than it is
    still answered (the demo agent and the built-in local model, on loopback)."""
    body = json.dumps({"model": "lictor-local",
                       "messages": [{"role": "user", "content": "hello there"}]}).encode()
    sock = _connect(lictor)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lictor\r\n"
                 b"Authorization: Bearer sk-lictor-demo\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    half = len(body) // 2
    for part in (body[:half], body[half:]):
        time.sleep(DEADLINE_S * 0.8)
        sock.sendall(part)
    assert _answer(sock).startswith(b"HTTP/1.1 200")
    sock.close()


@pytest.mark.parametrize("value", [0, -1, "soon", 7200])
def test_the_deadline_is_validated(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="header_timeout_s"):
        load_config(None, {"data_dir": str(tmp_path), "limits": {"header_timeout_s": value}})


def test_the_deadline_defaults_to_ten_seconds(tmp_path: Path) -> None:
    assert load_config(None, {"data_dir": str(tmp_path)}).limits.header_timeout_s == 10.0
