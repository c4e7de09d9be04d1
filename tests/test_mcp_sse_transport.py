"""MCP's older HTTP+SSE transport through lictor, with the official SDK on both sides: its
`sse_client` pointed at `/mcp/{name}/sse`, and FastMCP's SSE app upstream. No MCP mocks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from aiohttp import web
from conftest import audit_rows
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.shared.exceptions import McpError
from mcp_upstream import EMAIL, INJECTION, McpUpstream
from test_mcp_proxy import ADMIN_KEY, ALL_TOOLS, OPS_KEY, SUPPORT_KEY, lictor_config, run

from lictor.adapters import mcp as wire
from lictor.proxy.server import AppThread, BackgroundServer

PING = b'{"jsonrpc": "2.0", "id": 7, "method": "ping"}'


@pytest.fixture(scope="module")
def legacy() -> Iterator[McpUpstream]:
    with McpUpstream("legacy", sse=True) as server:
        yield server


@pytest.fixture(scope="module")
def lictor(tmp_path_factory: pytest.TempPathFactory,
           legacy: McpUpstream) -> Iterator[BackgroundServer]:
    config = lictor_config(tmp_path_factory.mktemp("mcp-sse"), [
        {"name": "legacy", "url": legacy.url, "transport": "sse", "pin": "first_use"},
        {"name": "gone", "url": "http://127.0.0.1:9/sse", "transport": "sse", "timeout_s": 2},
    ])
    with BackgroundServer(config) as server:
        yield server


@asynccontextmanager
async def connect(server: BackgroundServer, key: str, session: str,
                  sessions: list[str] | None = None) -> AsyncIterator[ClientSession]:
    """The SDK's SSE client with the agent's lictor key; `sessions` gets lictor's id for
    the session, as the SDK reads it from the endpoint event."""
    headers = {"Authorization": f"Bearer {key}", "x-lictor-session": session}
    found = sessions if sessions is not None else []
    async with sse_client(f"{server.url}/mcp/legacy/sse", headers=headers, timeout=30,
                          on_session_created=found.append) as (r, w), \
            ClientSession(r, w) as client:
        await client.initialize()
        yield client


async def tool_names(server: BackgroundServer, key: str) -> set[str]:
    async with connect(server, key, "listing") as client:
        return {t.name for t in (await client.list_tools()).tools}


async def post(server: BackgroundServer, session_id: str, body: bytes, key: str) -> int:
    """POST straight to lictor's message endpoint; the HTTP status."""
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{server.url}/mcp/legacy/messages?session_id={session_id}",
                               content=body, headers={"Authorization": f"Bearer {key}",
                                                      "Content-Type": "application/json"})
        return resp.status_code


def test_agents_see_only_the_tools_they_may_call(lictor: BackgroundServer,
                                                  legacy: McpUpstream) -> None:
    assert run(lambda: tool_names(lictor, OPS_KEY)) == ALL_TOOLS
    assert run(lambda: tool_names(lictor, SUPPORT_KEY)) == ALL_TOOLS - {"delete_records"}
    listed = [r for r in audit_rows(lictor) if r["kind"] == "mcp_result"
              and r["action"]["method"] == "tools/list"
              and r["principal"]["agent"] == "support-agent"]
    assert listed[-1]["hidden_tools"][0]["tool"] == "delete_records"
    assert "support-may-not-delete" in listed[-1]["hidden_tools"][0]["reason"]
    # lictor talks to the server with its own headers: no agent key ever reached it
    assert not {OPS_KEY, SUPPORT_KEY} & {a.removeprefix("Bearer ") for a in legacy.authorization}


def test_forbidden_call_never_reaches_the_server(lictor: BackgroundServer,
                                                  legacy: McpUpstream) -> None:
    async def go() -> tuple[McpError, str]:
        async with connect(lictor, SUPPORT_KEY, "forbidden") as client:
            await client.list_tools()
            with pytest.raises(McpError) as info:
                await client.call_tool("delete_records", {"table": "customers"})
            # the refusal came on the stream; the session goes on
            result = await client.call_tool("lookup_order", {"order_id": "A1"})
            return info.value, result.content[0].text  # type: ignore[union-attr]

    before = legacy.called("delete_records")
    error, after = run(go)
    assert error.error.code == wire.POLICY_BLOCKED
    assert "cedar:support-may-not-delete" in error.error.message
    assert legacy.called("delete_records") == before
    assert after == "Order A1: 2 items, shipped on Monday."

    async def allowed() -> str:
        async with connect(lictor, OPS_KEY, "allowed") as client:
            await client.list_tools()
            result = await client.call_tool("delete_records", {"table": "tmp"})
            return result.content[0].text  # type: ignore[union-attr]

    assert run(allowed) == "Deleted all records of tmp."
    assert legacy.called("delete_records") == before + 1


def test_injection_withheld_and_email_masked(lictor: BackgroundServer) -> None:
    async def go() -> tuple[Any, Any]:
        async with connect(lictor, OPS_KEY, "results") as client:
            await client.list_tools()
            page = await client.call_tool("fetch_page", {"url": "https://shop.example"})
            email = await client.call_tool("customer_email", {"customer_id": "C-7"})
            return page, email

    page, email = run(go)
    assert page.isError is True
    assert "withheld" in page.content[0].text
    assert "injection.instruction-override" in page.content[0].text
    assert INJECTION not in json.dumps(page.model_dump())
    assert email.isError is False
    assert email.content[0].text == "Customer C-7 can be reached at <EMAIL_1>."
    withheld = [r for r in audit_rows(lictor) if r["kind"] == "mcp_result"
                and r["action"]["tool"] == "fetch_page"]
    assert withheld[-1]["withheld"] is True and withheld[-1]["verdict"] == "block"


def test_kill_switch_and_approvals_apply_to_posted_messages(lictor: BackgroundServer,
                                                            legacy: McpUpstream) -> None:
    """The same decisions as streamable HTTP: a held transfer is refused on the stream with
    its approval id; a killed agent's messages stop, and so does opening a stream."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    kill = f"{lictor.url}/admin/agents/support-agent/kill"

    async def go() -> tuple[McpError, McpError]:
        async with connect(lictor, SUPPORT_KEY, "drill") as client:
            await client.list_tools()
            with pytest.raises(McpError) as held:
                await client.call_tool("bank_transfer",
                                       {"amount": 25000, "currency": "EUR", "to": "ACME"})
            async with httpx.AsyncClient(headers=admin, timeout=10) as http:
                assert (await http.post(kill, json={"reason": "drill"})).is_success
            with pytest.raises(McpError) as killed:
                await client.call_tool("lookup_order", {"order_id": "A2"})
            return held.value, killed.value

    before = len(legacy.calls)
    try:
        held, killed = run(go)
        stream = requests.get(f"{lictor.url}/mcp/legacy/sse", timeout=10,
                              headers={"Authorization": f"Bearer {SUPPORT_KEY}"})
    finally:
        requests.delete(kill, json={"reason": "drill over"}, headers=admin, timeout=10)
    assert held.error.code == wire.APPROVAL_REQUIRED and "apr_" in held.error.message
    assert "lictor.kill-switch" in killed.error.message
    assert stream.status_code == 403 and "lictor.kill-switch" in stream.text
    assert len(legacy.calls) == before


def test_only_the_agent_that_opened_a_session_may_post_to_it(lictor: BackgroundServer,
                                                             legacy: McpUpstream) -> None:
    async def go() -> dict[str, int]:
        sessions: list[str] = []
        async with connect(lictor, OPS_KEY, "owner", sessions) as client:
            await client.send_ping()  # what initialize sends after it has been posted
            before = legacy.http_requests
            statuses = {
                "other agent": await post(lictor, sessions[0], PING, SUPPORT_KEY),
                "no key": await post(lictor, sessions[0], PING, "sk-nobody"),
                "unknown session": await post(lictor, "nope", PING, OPS_KEY),
                "bad json": await post(lictor, sessions[0], b'{"jsonrpc": ', OPS_KEY),
            }
            statuses["forwarded"] = legacy.http_requests - before
            await client.send_ping()  # the owner's session is unharmed
            return statuses

    assert run(go) == {"other agent": 403, "no key": 401, "unknown session": 404,
                       "bad json": 400, "forwarded": 0}
    refused = [r for r in audit_rows(lictor) if r["kind"] == "rejected_request"
               and r["principal"] and r["principal"]["agent"] == "support-agent"]
    assert "opened by another agent" in refused[-1]["reason"]


def test_the_agent_gets_lictors_endpoint_not_the_servers(lictor: BackgroundServer) -> None:
    """The endpoint event names lictor's URL; the server's own stays with lictor."""
    async def first_event() -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {OPS_KEY}"}
        async with httpx.AsyncClient(timeout=10) as http, \
                http.stream("GET", f"{lictor.url}/mcp/legacy/sse", headers=headers) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    return resp.status_code, line.removeprefix("data: ")
        return resp.status_code, ""

    status, endpoint = run(first_event)
    assert status == 200
    assert endpoint.startswith("/mcp/legacy/messages?session_id=")
    assert len(endpoint.split("=", 1)[1]) >= 32
    assert requests.get(f"{lictor.url}/mcp/legacy/sse", timeout=10).status_code == 401


def test_a_session_ends_when_its_agent_leaves(lictor: BackgroundServer,
                                              legacy: McpUpstream) -> None:
    """An agent that leaves closes lictor's stream from the server within a second or two,
    not only when a keep-alive fails to reach it."""
    assert run(lambda: tool_names(lictor, OPS_KEY)) == ALL_TOOLS
    left = time.monotonic()
    while legacy.open_requests and time.monotonic() - left < 5:
        time.sleep(0.05)
    assert legacy.open_requests == 0
    assert time.monotonic() - left < 5


def test_transport_mismatch_and_unreachable_server(lictor: BackgroundServer) -> None:
    resp = requests.post(f"{lictor.url}/mcp/legacy", data=PING, timeout=10, headers={
        "Authorization": f"Bearer {OPS_KEY}", "Content-Type": "application/json"})
    assert resp.status_code == 404
    assert "connect to /mcp/legacy/sse" in resp.json()["error"]["message"]
    down = requests.get(f"{lictor.url}/mcp/gone/sse", timeout=10,
                        headers={"Authorization": f"Bearer {OPS_KEY}"})
    assert down.status_code == 502
    assert down.json()["error"]["code"] == wire.UPSTREAM_FAILED
    assert "cannot reach MCP server 'gone'" in down.json()["error"]["message"]


def test_audit_records_calls_and_results(lictor: BackgroundServer) -> None:
    async def go() -> None:
        async with connect(lictor, OPS_KEY, "audit") as client:
            await client.list_tools()
            await client.call_tool("customer_email", {"customer_id": f"C-9 {EMAIL}"})

    run(go)
    rows = audit_rows(lictor)
    call = [r for r in rows if r["kind"] == "mcp_request"
            and r["action"]["tool"] == "customer_email"][-1]
    assert call["principal"]["agent"] == "ops-agent"
    assert call["action"]["server"] == "legacy" and call["action"]["method"] == "tools/call"
    assert "<EMAIL_ADDRESS>" in call["content"][0]["text"]
    # the result is judged for the request it answers, under that request's id
    result = next(r for r in rows if r["kind"] == "mcp_result"
                  and r["request_id"] == call["request_id"])
    assert result["action"]["tool"] == "customer_email"
    assert result["verdict"] == "mask"
    assert {r["action"]["message"] for r in rows if r["kind"] == "mcp_request"} >= {
        "request", "notification", "get_stream"}
    blobs = b"".join(p.read_bytes() for p in
                     lictor.gateway.audit.path.parent.glob("audit.sqlite3*"))
    assert EMAIL.encode() not in blobs


class ScriptedSse:
    """A hand-driven HTTP+SSE server for what FastMCP will not do on cue: name an endpoint
    on another origin, leave a request unanswered, send events that are not messages, end
    its stream while a request waits."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.posted: list[dict[str, Any]] = []
        self.thread = AppThread(self._app, "127.0.0.1", 0)
        self._out: web.StreamResponse | None = None
        self._done = asyncio.Event()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sse", self._sse)
        app.router.add_post("/messages", self._post)
        return app

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        await out.write(f"event: endpoint\ndata: {self.endpoint}\n\n".encode())
        self._out = out
        while request.transport is not None:  # until told to end, or lictor leaves
            try:
                await asyncio.wait_for(self._done.wait(), 0.05)
            except TimeoutError:
                continue
            break
        return out

    async def _post(self, request: web.Request) -> web.Response:
        message = await request.json()
        self.posted.append(message)
        assert self._out is not None
        if message.get("method") == "ping":
            answer = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {}})
            await self._out.write(b'event: note\ndata: {"jsonrpc": "2.0", "method": "x"}\n\n'
                                  b"data: not json\n\n" + f"data: {answer}\n\n".encode())
        elif message.get("method") == "bye":
            self._done.set()  # the stream ends; whatever waits is left unanswered
        return web.Response(status=202)


async def data_lines(lines: AsyncIterator[str], count: int | None = None) -> list[str]:
    """The next `count` data payloads of an SSE stream (all, to its end, if None)."""
    found: list[str] = []
    async for line in lines:
        if line.startswith("data: "):
            found.append(line.removeprefix("data: "))
            if len(found) == count:
                break
    return found


def test_protocol_edges_with_a_scripted_server(tmp_path: Path) -> None:
    """A server's endpoint on another origin is refused (lictor would post there with its
    credentials); a request id still waiting cannot be reused (its answer would be judged
    for the other method); events that are not JSON-RPC messages are dropped; a stream
    that ends answers each waiting request with an error."""
    scripted = ScriptedSse("/messages?sid=1")
    evil = ScriptedSse("http://127.0.0.2:1/messages")
    with scripted.thread, evil.thread:
        config = lictor_config(tmp_path, [
            {"name": "scripted", "url": f"{scripted.thread.url}/sse", "transport": "sse"},
            {"name": "evil", "url": f"{evil.thread.url}/sse", "transport": "sse"}])
        with BackgroundServer(config) as server:
            async def go() -> tuple[int, str, list[int], list[str]]:
                headers = {"Authorization": f"Bearer {OPS_KEY}"}
                async with httpx.AsyncClient(timeout=10, headers=headers) as http:
                    refused = await http.get(f"{server.url}/mcp/evil/sse")
                    async with http.stream("GET", f"{server.url}/mcp/scripted/sse") as resp:
                        lines = resp.aiter_lines()
                        [endpoint] = await data_lines(lines, 1)
                        url = server.url + endpoint
                        hang = {"jsonrpc": "2.0", "id": 1, "method": "hang"}
                        statuses = [(await http.post(url, json=hang)).status_code,
                                    (await http.post(url, json=hang)).status_code]
                        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
                        statuses.append((await http.post(url, json=ping)).status_code)
                        [pong] = await data_lines(lines, 1)
                        bye = {"jsonrpc": "2.0", "method": "bye"}
                        statuses.append((await http.post(url, json=bye)).status_code)
                        rest = await data_lines(lines)
                return refused.status_code, refused.text, statuses, [pong, *rest]

            status, text, statuses, events = run(go)
    assert status == 502 and "is not on its own origin" in text
    assert evil.posted == []
    assert statuses == [202, 400, 202, 202]
    assert [m["method"] for m in scripted.posted] == ["hang", "ping", "bye"]
    pong, failed = (json.loads(e) for e in events)
    assert pong == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert failed["id"] == 1 and failed["error"]["code"] == wire.UPSTREAM_FAILED
    assert "the stream ended" in failed["error"]["message"]
