"""MCP's older HTTP+SSE transport through lictor, with the official SDK on both sides: its
`sse_client` pointed at `/mcp/{name}/sse`, and FastMCP's SSE app upstream. No MCP mocks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import requests
from conftest import audit_rows
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.shared.exceptions import McpError
from mcp_upstream import EMAIL, INJECTION, McpUpstream
from test_mcp_proxy import ADMIN_KEY, ALL_TOOLS, OPS_KEY, SUPPORT_KEY, lictor_config, run

from lictor.adapters import mcp as wire
from lictor.proxy.server import BackgroundServer

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
