"""The bad-input matrix: every hostile body on every data plane that takes JSON (the model
gateway, the MCP proxy, the admin API). Each gets a bounded, protocol-native 4xx, is audited
with its principal, and never reaches an upstream; lictor keeps serving afterwards."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import audit_rows
from mcp_upstream import McpUpstream
from mock_openai import MockOpenAI

from lictor.proxy.config import load_config
from lictor.proxy.server import BackgroundServer

AGENT_KEY = "sk-matrix-agent-0123456789"
ADMIN_KEY = "sk-matrix-admin-0123456789"
LIMIT = 16_384

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
MCP = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
ADMIN = {"reason": "matrix test"}


@dataclass
class Plane:
    name: str
    path: str
    key: str
    good: dict[str, Any]

    def check_error(self, resp: requests.Response, status: int) -> None:
        """The plane's own error shape: OpenAI error JSON, or a JSON-RPC error."""
        assert resp.status_code == status, resp.text[:300]
        body = resp.json()
        if self.name == "mcp":
            assert body["jsonrpc"] == "2.0" and body["error"]["message"]
        else:
            assert set(body["error"]) == {"message", "type", "param", "code"}
            assert body["error"]["message"]


PLANES = [Plane("gateway", "/v1/chat/completions", AGENT_KEY, CHAT),
          Plane("mcp", "/mcp/shop", AGENT_KEY, MCP),
          Plane("admin", "/admin/agents/matrix-agent/kill", ADMIN_KEY, ADMIN)]


def _truncated(value: dict[str, Any]) -> bytes:
    raw = json.dumps(value).encode()
    return raw[: len(raw) // 2]


# name, body (from the plane's good body), extra headers, expected status
CASES: list[tuple[str, Any, dict[str, str], int]] = [
    ("malformed JSON", lambda good: b'{"a": [1, 2', {}, 400),
    ("truncated JSON", _truncated, {}, 400),
    ("wrong types", lambda good: json.dumps({k: [v] for k, v in good.items()}).encode(), {}, 400),
    ("not an object", lambda good: b'"just a string"', {}, 400),
    ("deeply nested", lambda good: b"[" * 5_000 + b"]" * 5_000, {}, 400),
    ("nested past the limit", lambda good: json.dumps(
        {**good, "x": json.loads("[" * 80 + "]" * 80)}).encode(), {}, 400),
    ("huge string", lambda good: json.dumps({**good, "pad": "x" * 200_000}).encode(), {}, 413),
    ("huge array", lambda good: json.dumps({**good, "pad": [0] * 100_000}).encode(), {}, 413),
    ("invalid UTF-8", lambda good: json.dumps(good).encode()[:-1] + b', "x": "\xff\xfe"}', {},
     400),
    ("UTF-16", lambda good: json.dumps(good).encode("utf-16"), {}, 400),
    ("lone surrogate", lambda good: json.dumps({**good, "x": "\ud800"}).encode(), {}, 400),
    ("raw NUL byte", lambda good: json.dumps(good).encode()[:-1] + b', "x": "a\x00b"}', {}, 400),
    ("duplicate keys", lambda good: json.dumps(good).encode()[:-1]
     + b', ' + json.dumps(good).encode()[1:], {}, 400),
    ("NaN", lambda good: json.dumps(good).encode()[:-1] + b', "x": NaN}', {}, 400),
    ("gzip bomb", lambda good: gzip.compress(b'{"pad": "' + b"0" * 20_000_000 + b'"}'),
     {"Content-Encoding": "gzip"}, 413),
    ("unexpected content type", lambda good: json.dumps(good).encode(),
     {"Content-Type": "text/plain"}, 415),
]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[MockOpenAI, McpUpstream]]:
    with MockOpenAI() as model, McpUpstream("shop") as shop:
        yield model, shop


@pytest.fixture(scope="module")
def lictor(tmp_path_factory: pytest.TempPathFactory,
           upstreams: tuple[MockOpenAI, McpUpstream]) -> Iterator[BackgroundServer]:
    model, shop = upstreams
    tmp: Path = tmp_path_factory.mktemp("matrix")
    config = load_config(None, {
        "server": {"host": "127.0.0.1", "port": 0, "max_body_bytes": LIMIT},
        "data_dir": str(tmp / "var"),
        "agents": [{"id": "matrix-agent", "key": AGENT_KEY}],
        "admin": {"keys": [{"id": "matrix-admin", "key": ADMIN_KEY}]},
        "models": [{"name": "mock-gpt", "backend": "passthrough", "base_url": model.base_url}],
        "mcp_servers": [{"name": "shop", "url": shop.url, "pin": "first_use"}],
    })
    with BackgroundServer(config) as server:
        yield server


def _post(server: BackgroundServer, plane: Plane, body: bytes,
          headers: dict[str, str]) -> requests.Response:
    return requests.post(server.url + plane.path, data=body, timeout=20, headers={
        "Authorization": f"Bearer {plane.key}", "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream", **headers})


@pytest.mark.parametrize("plane", PLANES, ids=[p.name for p in PLANES])
@pytest.mark.parametrize(("name", "make", "headers", "status"), CASES, ids=[c[0] for c in CASES])
def test_hostile_bodies_are_refused_in_the_planes_own_format(
        lictor: BackgroundServer, upstreams: tuple[MockOpenAI, McpUpstream], plane: Plane,
        name: str, make: Any, headers: dict[str, str], status: int) -> None:
    model, shop = upstreams
    before = (len(model.received), shop.http_requests)
    resp = _post(lictor, plane, make(plane.good), headers)
    plane.check_error(resp, status)
    assert (len(model.received), shop.http_requests) == before, "it reached an upstream"
    if plane.name != "admin":  # agent traffic: the refusal is audited with its principal
        rid = resp.headers["x-lictor-request-id"]
        [record] = [r for r in audit_rows(lictor) if r["request_id"] == rid]
        assert record["kind"] == "rejected_request" and record["status"] == status
        assert record["principal"]["agent"] == "matrix-agent"
    if plane.name == "admin":  # nothing happened: the agent was not stopped
        listed = requests.get(lictor.url + "/admin/agents", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert [a["stopped"] for a in listed["agents"]] == [False]


@pytest.mark.parametrize("plane", PLANES, ids=[p.name for p in PLANES])
def test_oversized_headers_are_a_clean_4xx(lictor: BackgroundServer, plane: Plane) -> None:
    resp = _post(lictor, plane, json.dumps(plane.good).encode(), {"X-Pad": "y" * 70_000})
    assert resp.status_code in (400, 431)


def test_slow_clients_do_not_starve_others(lictor: BackgroundServer) -> None:
    """Slowloris: 200 connections dribbling a header; a normal request is still served."""
    host, port = "127.0.0.1", int(lictor.url.rsplit(":", 1)[1])
    slow = []
    for _ in range(200):
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    try:
        start = time.monotonic()
        resp = _post(lictor, PLANES[0], json.dumps(CHAT).encode(), {})
        assert resp.status_code == 200 and time.monotonic() - start < 5
    finally:
        for sock in slow:
            sock.close()


def test_a_client_gone_mid_stream_is_audited_and_harmless(lictor: BackgroundServer) -> None:
    body = json.dumps({**CHAT, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", int(lictor.url.rsplit(":", 1)[1])))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + AGENT_KEY.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    head = sock.recv(300)  # the stream has begun
    assert head.startswith(b"HTTP/1.1 200")
    sock.close()
    rid = head.split(b"x-lictor-request-id: ", 1)[1].split(b"\r\n", 1)[0].decode()
    deadline = time.monotonic() + 10
    kinds: set[str] = set()
    while kinds != {"model_request", "model_response"} and time.monotonic() < deadline:
        kinds = {r["kind"] for r in audit_rows(lictor) if r["request_id"] == rid}
        time.sleep(0.05)
    assert kinds == {"model_request", "model_response"}  # audited, finished or cut
    resp = _post(lictor, PLANES[0], json.dumps(CHAT).encode(), {})
    assert resp.status_code == 200


@pytest.fixture(scope="module")
def egress_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, MockOpenAI]]:
    """The egress plane with a loopback HTTPS provider declared as an OpenAI model host."""
    from egress_setup import running_egress
    from tls_certs import make_test_ca

    tmp = tmp_path_factory.mktemp("matrix-egress")
    ca = make_test_ca(tmp / "ca")
    with MockOpenAI(ssl_context=ca.server_context()) as provider:
        host = "localhost:" + provider.url.rsplit(":", 1)[1]
        with running_egress(tmp, ca, [], max_body_bytes=LIMIT,
                            model_hosts=[{"host": host, "protocol": "openai"}]) as egress:
            yield egress, provider


EGRESS_CASES = [c for c in CASES if c[0] != "gzip bomb"]  # bounded by the egress decoder


@pytest.mark.parametrize(("name", "make", "headers", "status"), EGRESS_CASES,
                         ids=[c[0] for c in EGRESS_CASES])
def test_hostile_bodies_through_the_egress_proxy_get_the_gateways_answer(
        egress_model: tuple[Any, MockOpenAI], name: str, make: Any, headers: dict[str, str],
        status: int) -> None:
    """A model call caught by the sidecar is judged by the gateway's own parser."""
    egress, provider = egress_model
    host = "localhost:" + provider.url.rsplit(":", 1)[1]
    before, body = len(provider.received), make(CHAT)
    try:
        resp = requests.post(
            f"https://{host}/v1/chat/completions", data=body, timeout=20,
            headers={"Content-Type": "application/json", **headers},
            proxies={"https": egress.proxy_url}, verify=str(egress.ca_cert))
    except requests.ConnectionError:
        # mitmproxy's own bound answers 413 and closes while the client still sends: the
        # client may see the close first (a clean close, as the matrix allows)
        assert len(body) > 4 * LIMIT
    else:
        if len(body) > 4 * LIMIT:
            assert resp.status_code == 413
        else:
            PLANES[0].check_error(resp, status)
    assert len(provider.received) == before, "it reached the provider"


def test_a_declared_oversized_body_is_refused_in_json_before_it_is_read(
        egress_model: tuple[Any, MockOpenAI]) -> None:
    egress, provider = egress_model
    host = "localhost:" + provider.url.rsplit(":", 1)[1]
    resp = requests.post(
        f"https://{host}/v1/chat/completions", timeout=20,
        data=json.dumps({**CHAT, "pad": "x" * (2 * LIMIT)}).encode(),
        headers={"Content-Type": "application/json"},
        proxies={"https": egress.proxy_url}, verify=str(egress.ca_cert))
    assert resp.status_code == 413
    error = resp.json()["error"]  # the egress refusal: OpenAI's envelope, lictor's fields
    assert error["code"] == "request_too_large" and "server.max_body_bytes" in error["message"]
    assert len(provider.received) == 0
