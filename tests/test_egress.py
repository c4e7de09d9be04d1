"""The egress data plane (`lictor serve --egress`): real clients (httpx, requests) using the
proxy environment variables and trusting lictor's CA, reaching loopback HTTPS servers.

Allowed calls pass; denied hosts and paths get a readable 403 and never reach the server;
everything is audited like gateway traffic; lictor injects credentials and strips the
agent's; mitmproxy carries chunked bodies, keep-alive, SSE and HTTP/2 with the h11/h2
versions the overrides keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import requests
from conftest import audit_rows
from egress_setup import Egress, running_egress
from tls_certs import CertAuthority, make_test_ca
from tool_server import ToolServer

RECORD_KEYS = {"kind", "request_id", "principal", "action", "verdict", "findings",
               "policy_hash", "content"}


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return make_test_ca(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture
def tools(test_ca: CertAuthority) -> Iterator[ToolServer]:
    with ToolServer(test_ca.server_context()) as server:
        yield server


@pytest.fixture
def other(test_ca: CertAuthority) -> Iterator[ToolServer]:
    """A second server that no policy allows."""
    with ToolServer(test_ca.server_context()) as server:
        yield server


@pytest.fixture
def egress(tmp_path: Path, test_ca: CertAuthority, tools: ToolServer) -> Iterator[Egress]:
    with running_egress(tmp_path, test_ca, [tools.host]) as running:
        yield running


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, egress: Egress) -> Egress:
    """The agent's environment: proxy variables and lictor's CA, nothing else."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", egress.proxy_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(egress.ca_cert))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(egress.ca_cert))
    return egress


def _get(client: str, url: str) -> tuple[int, str, str]:
    """Status, body and Content-Type of a GET through the proxy environment."""
    if client == "httpx":
        r = httpx.get(url, timeout=30)
        return r.status_code, r.text, r.headers.get("content-type", "")
    resp = requests.get(url, timeout=30)
    return resp.status_code, resp.text, resp.headers.get("content-type", "")


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_allowed_passes_denied_never_reaches(proxy_env: Egress, tools: ToolServer,
                                             other: ToolServer, client: str) -> None:
    status, body, _ = _get(client, f"{tools.base}/weather?city=Oslo")
    assert status == 200 and '"city": "Oslo"' in body
    assert [s.path for s in tools.seen] == ["/weather?city=Oslo"]

    status, body, ctype = _get(client, f"{tools.base}/admin/users")
    assert status == 403 and ctype.startswith("application/json")
    assert "no-admin-paths" in body and "may not send GET to" in body
    status, body, _ = _get(client, f"{other.base}/weather")
    assert status == 403
    assert "no policy permits it" in body and other.host in body
    assert "http_request" in body  # says where hosts are allowed
    assert [s.path for s in tools.seen] == ["/weather?city=Oslo"]  # the server saw nothing
    assert other.seen == []

    rows = audit_rows(proxy_env.server)
    assert [(r["kind"], r["verdict"]) for r in rows] == [
        ("http_request", "allow"), ("http_response", "allow"),
        ("http_request", "block"), ("http_request", "block")]
    for row in rows:
        assert row.keys() >= RECORD_KEYS
        assert row["principal"] == {"agent": "demo-agent", "team": "demo", "tenant": "local"}
    assert rows[0]["action"] == {"kind": "http_request", "protocol": "http", "method": "GET",
                                 "host": tools.host, "path": "/weather",
                                 "body_scanned": True}
    assert rows[2]["findings"][0]["rule"] == "cedar:no-admin-paths"
    assert rows[3]["findings"][0]["rule"] == "cedar:no policy permits it"


def test_injection_in_answer_is_withheld(proxy_env: Egress, tools: ToolServer) -> None:
    status, body, _ = _get("httpx", f"{tools.base}/page")
    assert status == 403 and "injection." in body
    assert "Ignore all previous" not in body
    row = audit_rows(proxy_env.server)[-1]
    assert row["kind"] == "http_response" and row["verdict"] == "block"


def test_kill_switch_stops_egress_too(proxy_env: Egress, tools: ToolServer) -> None:
    """An agent an operator stopped reaches nothing, model or not."""
    from lictor.enforcement.limits import kill_key

    proxy_env.server.gateway.engine.limits.state.set_switch(kill_key("demo-agent"), True)
    status, body, _ = _get("httpx", f"{tools.base}/weather")
    assert status == 403 and "lictor.kill-switch" in body
    assert tools.seen == []


def test_request_body_scanned_pii_never_audited(proxy_env: Egress, tools: ToolServer) -> None:
    """The tool gets the real values it needs; the audit keeps them redacted."""
    payload = '{"to": "jane.doe@example.com", "key": "AKIAIOSFODNN7EXAMPLE"}'
    r = httpx.post(f"{tools.base}/echo", content=payload,
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200 and r.text == payload
    assert tools.seen[-1].body == payload.encode()
    rows = audit_rows(proxy_env.server)
    rules = [f["rule"] for f in rows[-2]["findings"]]
    assert "secrets.in-request" in rules and "pii.mask-outbound" in rules
    stored = proxy_env.server.gateway.audit.path.parent
    blobs = b"".join(p.read_bytes() for p in stored.iterdir() if p.is_file())
    assert b"jane.doe@example.com" not in blobs and b"AKIAIOSFODNN7EXAMPLE" not in blobs


def test_compressed_bodies_are_decoded_with_a_bound(proxy_env: Egress,
                                                    tools: ToolServer) -> None:
    """What is compressed is judged decoded; what lictor cannot decode, or what expands past
    its limits, is neither sent nor released."""
    zipped = gzip.compress(b'{"to": "jane.doe@example.com"}')
    r = httpx.post(f"{tools.base}/echo", content=zipped, timeout=30,
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip",
                            "Accept-Encoding": "br, zstd, gzip"})
    assert r.status_code == 200
    assert tools.seen[-1].headers["Content-Encoding"] == "gzip"  # sent as the agent encoded it
    assert tools.seen[-1].body == gzip.decompress(zipped)  # (aiohttp decodes what it reads)
    assert tools.seen[-1].headers["Accept-Encoding"] == "gzip, deflate"  # answers lictor reads
    assert "pii.mask-outbound" in [f["rule"] for f in audit_rows(proxy_env.server)[-2]["findings"]]

    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB decoded, over the 4 MiB limit
    r = httpx.post(f"{tools.base}/echo", content=bomb, timeout=30,
                   headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    assert r.status_code == 413
    r = httpx.post(f"{tools.base}/echo", content=b"\x1b\x00", timeout=30,
                   headers={"Content-Type": "text/plain", "Content-Encoding": "br"})
    assert r.status_code == 415
    assert len(tools.seen) == 1

    r = httpx.get(f"{tools.base}/zipped", timeout=30)  # an injection, gzip-encoded
    assert r.status_code == 403 and "injection." in r.text
    r = httpx.get(f"{tools.base}/bomb", timeout=30)  # 64 MiB once decoded: withheld
    assert r.status_code == 502 and "larger than" in r.text
    assert audit_rows(proxy_env.server)[-1]["error_code"] == "response_withheld"


def test_chunked_keepalive_sse_and_http2(proxy_env: Egress, tools: ToolServer) -> None:
    """mitmproxy with the h11 0.16 / h2 4.4 overrides: chunked bodies, several requests on
    one kept-alive connection, an SSE answer, and HTTP/2 between agent and lictor."""
    with httpx.Client(timeout=30) as client:
        chunked = client.get(f"{tools.base}/chunked")
        assert chunked.text == "part 0;part 1;part 2;part 3;part 4;"
        events = client.get(f"{tools.base}/events")
        assert events.text == "data: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n"
        for city in ("a", "b", "c"):
            assert client.get(f"{tools.base}/weather?city={city}").json()["city"] == city
        # a generator body goes out chunked (no Content-Length)
        up = client.post(f"{tools.base}/echo", content=iter([b"x" * 50_000] * 2),
                         headers={"Content-Type": "text/plain"})
        assert len(up.content) == 100_000
        assert tools.seen[-1].body == b"x" * 100_000
        # both framings at once is a smuggling attempt: refused before any upstream
        sneaky = client.post(f"{tools.base}/echo", content=b"0\r\n\r\n",
                             headers={"Content-Type": "text/plain",
                                      "Transfer-Encoding": "chunked"})
        assert sneaky.status_code == 400 and tools.seen[-1].body == b"x" * 100_000
    if shutil.which("curl") is None:
        pytest.skip("HTTP/2 part: curl is not installed (httpx prefers HTTP/1.1 via proxies)")
    out = subprocess.run(
        ["curl", "-sS", "--http2", "-x", proxy_env.proxy_url, "--cacert", str(proxy_env.ca_cert),
         "-w", "\n%{http_version}", f"{tools.base}/weather?city=h2"],
        capture_output=True, text=True, timeout=30, check=True)
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2" and json.loads(body)["city"] == "h2"


def test_credentials_injected_and_smuggled_ones_stripped(
        tmp_path: Path, test_ca: CertAuthority, tools: ToolServer, other: ToolServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LICTOR_TEST_TOOL_KEY", "tool-secret-123")
    creds = [{"host": tools.host, "env": "LICTOR_TEST_TOOL_KEY"}]
    with running_egress(tmp_path, test_ca, [tools.host, other.host],
                        credentials=creds) as running:
        proxy = {"https://": httpx.HTTPTransport(proxy=running.proxy_url,
                                                 verify=str(running.ca_cert))}
        with httpx.Client(mounts=proxy, timeout=30) as client:
            assert client.get(f"{tools.base}/weather").status_code == 200  # no key sent
            smuggled = {"Authorization": "Bearer agent-held-key", "x-api-key": "k2",
                        "api-key": "k3", "Cookie": "session=s1"}
            assert client.get(f"{other.base}/weather", headers=smuggled).status_code == 200
            assert client.get(f"{tools.base}/weather",
                              headers={"Authorization": "Bearer agent-held-key"}).status_code == 200
        stored = running.server.gateway.audit.path.parent
        blobs = b"".join(p.read_bytes() for p in stored.iterdir() if p.is_file())
    assert tools.seen[0].headers["Authorization"] == "Bearer tool-secret-123"
    assert tools.seen[1].headers["Authorization"] == "Bearer tool-secret-123"  # lictor's wins
    got = {k.lower() for k in other.seen[0].headers}
    assert not got & {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"}
    assert b"tool-secret-123" not in blobs and b"agent-held-key" not in blobs


def test_regular_mode_proxy_auth_names_the_agent(tmp_path: Path, test_ca: CertAuthority,
                                                 tools: ToolServer) -> None:
    with running_egress(tmp_path, test_ca, [tools.host], agent=None) as running:
        host = running.proxy_url.removeprefix("http://")
        verify = str(running.ca_cert)
        for proxy in (running.proxy_url, f"http://agent:sk-wrong@{host}"):
            with (httpx.Client(proxy=proxy, verify=verify, timeout=30) as anonymous,
                  pytest.raises(httpx.ProxyError, match="407")):
                anonymous.get(f"{tools.base}/weather")
        with httpx.Client(proxy=f"http://agent:sk-lictor-demo@{host}", verify=verify,
                          timeout=30) as agent:
            assert agent.get(f"{tools.base}/weather").status_code == 200
        rows = audit_rows(running.server)
    assert tools.seen and all("proxy-authorization" not in {k.lower() for k in s.headers}
                              for s in tools.seen)
    assert rows[-1]["principal"]["agent"] == "demo-agent"
    refused = [r for r in rows if r["kind"] == "rejected_request"]
    assert [(r["status"], r["principal"]) for r in refused] == [(407, None), (407, None)]
    stored = running.server.gateway.audit.path.parent
    assert b"sk-wrong" not in b"".join(p.read_bytes() for p in stored.iterdir() if p.is_file())


def test_wrong_proxy_key_is_refused_even_with_a_sidecar_agent(
        tmp_path: Path, test_ca: CertAuthority, tools: ToolServer) -> None:
    with running_egress(tmp_path, test_ca, [tools.host]) as running:
        host = running.proxy_url.removeprefix("http://")
        with (httpx.Client(proxy=f"http://agent:sk-wrong@{host}", verify=str(running.ca_cert),
                           timeout=30) as client,
              pytest.raises(httpx.ProxyError, match="407")):
            client.get(f"{tools.base}/weather")
    assert tools.seen == []


def test_oversized_body_refused_and_audited(tmp_path: Path, test_ca: CertAuthority,
                                            tools: ToolServer) -> None:
    with running_egress(tmp_path, test_ca, [tools.host], max_body_bytes=2048) as running:
        with httpx.Client(proxy=running.proxy_url, verify=str(running.ca_cert),
                          timeout=30) as client:
            r = client.post(f"{tools.base}/echo", content=b"x" * 5000,
                            headers={"Content-Type": "text/plain"})
        rows = audit_rows(running.server)
    assert r.status_code == 413 and "2048 bytes" in r.text
    assert tools.seen == []
    assert rows[-1]["kind"] == "rejected_request" and rows[-1]["status"] == 413
    assert rows[-1]["path"] == f"{tools.host}/echo"


def test_upstream_certificate_is_verified(tmp_path: Path, tools: ToolServer) -> None:
    """lictor trusts only its configured CAs upstream: a server with a certificate from
    another CA is refused (502), never reached with the agent's request."""
    unknown_ca = make_test_ca(tmp_path / "another-ca")
    with running_egress(tmp_path, unknown_ca, [tools.host]) as running:
        with httpx.Client(proxy=running.proxy_url, verify=str(running.ca_cert),
                          timeout=30) as client:
            r = client.get(f"{tools.base}/weather")
        rows = audit_rows(running.server)
    assert r.status_code == 502
    assert tools.seen == []
    assert rows[-1]["kind"] == "upstream_error"


def test_raw_tcp_is_closed_even_to_an_allowed_host(tmp_path: Path, test_ca: CertAuthority,
                                                   tools: ToolServer) -> None:
    """Not HTTP, nothing to judge: a CONNECT tunnel carrying another protocol is refused
    before a byte reaches the destination."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(3)
        port = listener.getsockname()[1]
        with running_egress(tmp_path, test_ca, [f"localhost:{port}"]) as running:
            assert running.proxy.address is not None
            with socket.create_connection(running.proxy.address, timeout=10) as agent:
                agent.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\n"
                              f"Host: localhost:{port}\r\n\r\n".encode())
                assert agent.recv(1024).startswith(b"HTTP/1.1 200")
                agent.sendall(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
                answer = agent.recv(1024)  # parsed as HTTP (rawtcp off): refused
                assert answer.startswith(b"HTTP/1.1 400")
            received = b""
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                conn.settimeout(1)
                with conn, contextlib.suppress(TimeoutError):
                    received = conn.recv(1024)
    assert received == b""


def test_websocket_messages_are_judged(proxy_env: Egress, tools: ToolServer) -> None:
    async def talk() -> list[str]:
        ctx = ssl.create_default_context(cafile=str(proxy_env.ca_cert))
        got: list[str] = []
        async with aiohttp.ClientSession() as session, session.ws_connect(
                tools.base.replace("https", "wss") + "/ws", proxy=proxy_env.proxy_url,
                ssl=ctx) as ws:
            await ws.send_str("hello")
            got.append((await ws.receive(timeout=10)).data)
            await ws.send_str("page")
            got.append((await ws.receive(timeout=10)).data)
            await ws.send_str("again")
            got.append((await ws.receive(timeout=10)).data)
        return got

    got = asyncio.run(talk())
    assert got[0] == "echo: hello"
    assert "injection." in got[1] and "Ignore all previous" not in got[1]  # replaced
    assert got[2] == "echo: again"
    assert tools.ws_received == ["hello", "page", "again"]
    row = audit_rows(proxy_env.server)[-1]
    assert row["kind"] == "rejected_request" and "injection." in row["reason"]


@pytest.mark.parametrize(("egress", "message"), [
    ({"mode": "transparent"}, "transparent mode needs `egress.agent`"),
    ({"credentials": [{"host": "api.openai.com", "env": "LICTOR_TEST_UNSET_KEY"}]},
     "LICTOR_TEST_UNSET_KEY is not set"),
])
def test_egress_config_errors_stop_start_up(tmp_path: Path, egress: dict[str, object],
                                            message: str) -> None:
    from lictor.proxy.config import ConfigError, load_config
    from lictor.proxy.server import make_app

    config = load_config(None, {"data_dir": str(tmp_path / "var"), "egress": egress})
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_app(config, egress=True)


def test_unknown_sidecar_agent_is_a_config_error() -> None:
    from lictor.proxy.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=re.escape("egress.agent 'ghost' is not one of")):
        load_config(None, {"egress": {"agent": "ghost"}})


def test_plain_serve_does_not_import_mitmproxy() -> None:
    code = (
        "import sys, tempfile\n"
        "from lictor.proxy.config import load_config\n"
        "from lictor.proxy.server import make_app\n"
        "make_app(load_config(None, {'data_dir': tempfile.mkdtemp()}))\n"
        "print(any(m.split('.')[0] == 'mitmproxy' for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False"
