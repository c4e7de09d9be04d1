"""The request-body deadline (a slow-body client), against lictor on a loopback port with raw
sockets: on every plane that reads a body (the model gateway, the MCP proxy, the admin API)
a body dribbled past `limits.body_timeout_s` gets the plane's own 408 and the connection is
closed, others are served meanwhile, and a large body sent quickly is still accepted."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import audit_rows
from mcp_upstream import McpUpstream
from mock_openai import MockOpenAI
from test_header_deadline import _read_all

from lictor.proxy.config import ConfigError, load_config
from lictor.proxy.server import BackgroundServer

DEADLINE_S = 1.0
AGENT_KEY = "sk-slow-agent-0123456789"
ADMIN_KEY = "sk-slow-admin-0123456789"
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
PLANES = {"gateway": ("/v1/chat/completions", AGENT_KEY), "mcp": ("/mcp/shop", AGENT_KEY),
          "mcp-sse": ("", AGENT_KEY),  # the messages URL of an open stream's endpoint event
          "admin": ("/admin/agents/slow-agent/kill", ADMIN_KEY)}  # path, key


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[MockOpenAI, McpUpstream]]:
    with MockOpenAI() as model, McpUpstream("shop") as shop:
        yield model, shop


@pytest.fixture(scope="module")
def shop_sse() -> Iterator[McpUpstream]:
    with McpUpstream("shop-sse", sse=True) as shop:
        yield shop


@pytest.fixture(scope="module")
def lictor(tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[MockOpenAI, McpUpstream],
           shop_sse: McpUpstream) -> Iterator[BackgroundServer]:
    model, shop = upstreams
    config = load_config(None, {
        "server": {"host": "127.0.0.1", "port": 0},
        "data_dir": str(tmp_path_factory.mktemp("body-deadline") / "var"),
        "limits": {"body_timeout_s": DEADLINE_S},
        "agents": [{"id": "slow-agent", "key": AGENT_KEY}],
        "admin": {"keys": [{"id": "slow-admin", "key": ADMIN_KEY}]},
        "models": [{"name": "mock-gpt", "backend": "passthrough", "base_url": model.base_url}],
        "mcp_servers": [{"name": "shop", "url": shop.url, "pin": "first_use"},
                        {"name": "shop-sse", "url": shop_sse.url, "transport": "sse"}],
    })
    with BackgroundServer(config) as server:
        yield server


def _messages_path(stream: requests.Response) -> str:
    """The path an SSE-transport client posts to: its stream's `endpoint` event."""
    lines = stream.iter_lines(decode_unicode=True)
    for line in lines:
        if line == "event: endpoint":
            data = next(lines)
            assert data.startswith("data: ")
            return str(data.removeprefix("data: ").strip())
    raise AssertionError("the stream sent no endpoint event")


def _dribble(server: BackgroundServer, path: str, key: str, outcome: dict[str, Any]) -> None:
    """Headers at once, then a 1 KB body one byte every 0.2 s, until lictor stops it."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: lictor\r\nAuthorization: Bearer {key}\r\n"
                 "Content-Type: application/json\r\nAccept: application/json, "
                 "text/event-stream\r\nContent-Length: 1024\r\n\r\n".encode())
    started = time.monotonic()
    try:
        for byte in b'{"pad": "' + b"a" * 1000:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - started > DEADLINE_S + 5:
                break
    except OSError:  # the server closed it: what the client sees next is the answer
        pass
    outcome["answer"] = _read_all(sock)  # returns only once lictor closes the connection
    outcome["after_s"] = time.monotonic() - started
    sock.close()


@pytest.mark.parametrize("plane", list(PLANES))
def test_a_dribbled_body_gets_the_planes_408_and_others_are_served(
        lictor: BackgroundServer, upstreams: tuple[MockOpenAI, McpUpstream],
        plane: str) -> None:
    _, shop = upstreams
    path, key = PLANES[plane]
    shop_requests = shop.http_requests
    outcome: dict[str, Any] = {}
    stream = None
    if plane == "mcp-sse":  # a session of the older transport: a stream, then its messages
        stream = requests.get(lictor.url + "/mcp/shop-sse/sse", stream=True, timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
        path = _messages_path(stream)
    thread = threading.Thread(target=_dribble, args=(lictor, path, key, outcome))
    thread.start()
    served = []
    while thread.is_alive() and len(served) < 20:  # other clients, while it dribbles
        served.append(requests.post(lictor.url + "/v1/chat/completions", json=CHAT, timeout=5,
                                    headers={"Authorization": f"Bearer {AGENT_KEY}"}).status_code)
        served.append(requests.get(lictor.url + "/healthz", timeout=5).status_code)
        time.sleep(0.05)
    thread.join(30)
    if stream is not None:
        stream.close()
    assert served and set(served) == {200}
    head, _, body = outcome["answer"].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert DEADLINE_S <= outcome["after_s"] < DEADLINE_S + 2  # closed right after the answer
    error = json.loads(body)
    if plane.startswith("mcp"):  # a JSON-RPC error
        assert error["jsonrpc"] == "2.0" and "body_timeout_s" in error["error"]["message"]
    else:  # OpenAI's error envelope (the admin API's shape too)
        assert error["error"]["code"] == "request_timeout"
        assert "body_timeout_s" in error["error"]["message"]
    if plane != "admin":  # agent traffic: audited like other bad input, never forwarded
        rid = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"x-lictor-request-id:"))
        [record] = [r for r in audit_rows(lictor) if r["request_id"] == rid]
        assert record["kind"] == "rejected_request" and record["status"] == 408
        assert record["principal"]["agent"] == "slow-agent"
        assert shop.http_requests == shop_requests
    else:  # nothing happened: the agent was not stopped
        listed = requests.get(lictor.url + "/admin/agents", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert [a["stopped"] for a in listed["agents"]] == [False]


def test_a_large_body_sent_quickly_is_accepted(
        lictor: BackgroundServer, upstreams: tuple[MockOpenAI, McpUpstream]) -> None:
    """~1 MB (the mock upstream's own limit) arrives in many reads within the deadline:
    answered, not cut."""
    model, _ = upstreams
    words = "the quick brown fox jumps over the lazy dog " * 7_000  # ~300 KB a message
    body = {**CHAT, "messages": [{"role": "user", "content": words} for _ in range(3)]}
    raw = json.dumps(body).encode()
    assert len(raw) > 900_000
    resp = requests.post(lictor.url + "/v1/chat/completions", data=raw, timeout=60,
                         headers={"Authorization": f"Bearer {AGENT_KEY}",
                                  "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text[:300]
    assert model.received[-1].body["messages"][0]["content"] == words


@pytest.mark.parametrize("value", [0, -1, "soon", 7200])
def test_the_deadline_is_validated(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="body_timeout_s"):
        load_config(None, {"data_dir": str(tmp_path), "limits": {"body_timeout_s": value}})


def test_the_deadline_defaults_to_thirty_seconds(tmp_path: Path) -> None:
    assert load_config(None, {"data_dir": str(tmp_path)}).limits.body_timeout_s == 30.0
