"""An MCP server's notifications (log messages, progress) through lictor, with the official
SDK on both sides: a FastMCP tool that sends `ctx.info(...)` and `ctx.report_progress(...,
message=...)`, and a `ClientSession` with a logging callback and a progress handler. An
injection or a secret in one drops it (audited; the call goes on), personal data is masked,
a benign one arrives as sent. No MCP mocks."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import audit_rows
from mcp import ClientSession, types
from mcp.server.fastmcp import Context
from mcp_upstream import EMAIL, INJECTION, McpUpstream, client_transport
from test_mcp_proxy import OPS_KEY, lictor_config, run

from lictor.proxy.server import BackgroundServer

SESSIONS = itertools.count()
SECRET = "AKIA" + "ABCDEFGHIJKLMNOP"  # an AWS access key id's shape
BENIGN = "Looked up 3 orders so far."


class NotifyingUpstream(McpUpstream):
    """The test server, with a tool that logs `text` and reports progress with it, then a
    benign log line: the client must get what lictor lets through, and the result. The
    server fills in `<key>` (a secret in the agent's arguments would stop the call)."""

    def _tools(self) -> None:
        @self.mcp.tool()
        async def narrate(text: str, ctx: Context) -> str:  # type: ignore[type-arg]
            """Report what it does while it works."""
            text = text.replace("<key>", SECRET)
            await ctx.info(text)
            await ctx.report_progress(1, 2, message=text)
            await ctx.info(BENIGN)
            await ctx.report_progress(2, 2, message=BENIGN)
            return "narrated"


class Agent:
    """The agent's side: the log messages and progress messages it was shown."""

    def __init__(self) -> None:
        self.logs: list[Any] = []
        self.progress: list[str | None] = []

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)

    async def on_progress(self, progress: float, total: float | None,
                          message: str | None) -> None:
        self.progress.append(message)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[NotifyingUpstream, NotifyingUpstream]]:
    with NotifyingUpstream("notes") as plain, NotifyingUpstream("notes-sse", sse=True) as sse:
        yield plain, sse


@pytest.fixture(scope="module")
def lictor(tmp_path_factory: pytest.TempPathFactory,
           upstreams: tuple[NotifyingUpstream, NotifyingUpstream]) -> Iterator[BackgroundServer]:
    plain, sse = upstreams
    tmp: Path = tmp_path_factory.mktemp("mcp-notes")
    config = lictor_config(tmp, [
        {"name": "notes", "url": plain.url, "pin": "first_use"},
        {"name": "notes-sse", "url": sse.url, "transport": "sse", "pin": "first_use"},
    ])
    with BackgroundServer(config) as server:
        yield server


def narrate(server: BackgroundServer, text: str, sse: bool) -> tuple[Agent, types.CallToolResult]:
    agent = Agent()
    headers = {"Authorization": f"Bearer {OPS_KEY}", "x-lictor-session": f"notes-{next(SESSIONS)}"}

    async def go() -> types.CallToolResult:
        transport = client_transport(server.url, "notes-sse" if sse else "notes", headers, sse)
        async with transport as streams, \
                ClientSession(streams[0], streams[1], logging_callback=agent.log) as client:
            await client.initialize()
            await client.list_tools()
            return await client.call_tool("narrate", {"text": text},
                                          progress_callback=agent.on_progress)

    return agent, run(go)


def notifications(server: BackgroundServer) -> list[dict[str, Any]]:
    return [r for r in audit_rows(server) if r["kind"] == "mcp_server_notification"]


SSE = pytest.mark.parametrize("sse", [False, True], ids=["streamable", "sse"])


@SSE
def test_benign_notifications_arrive_as_sent(lictor: BackgroundServer, sse: bool) -> None:
    before = len(notifications(lictor))
    agent, result = narrate(lictor, "Starting the lookup.", sse)
    assert result.content[0].text == "narrated"  # type: ignore[union-attr]
    assert agent.logs == ["Starting the lookup.", BENIGN]
    assert agent.progress == ["Starting the lookup.", BENIGN]
    assert len(notifications(lictor)) == before  # nothing matched: nothing to audit


@SSE
@pytest.mark.parametrize(("text", "rule", "verdict"), [
    (INJECTION, "injection.instruction-override", "block"),
    ("using key <key>", "secrets.in-request", "flag"),  # flagged in a tool result: dropped here
], ids=["injection", "secret"])
def test_an_injection_or_secret_in_a_notification_drops_it(
        lictor: BackgroundServer, sse: bool, text: str, rule: str, verdict: str) -> None:
    agent, result = narrate(lictor, text, sse)
    assert result.content[0].text == "narrated"  # type: ignore[union-attr]  # the call went on
    assert agent.logs == [BENIGN]  # the log message and the progress message were dropped
    assert agent.progress == [BENIGN]
    rows = notifications(lictor)[-2:]
    assert [r["action"]["method"] for r in rows] == ["notifications/message",
                                                     "notifications/progress"]
    for row in rows:
        assert row["dropped"] is True and row["verdict"] == verdict
        assert row["principal"]["agent"] == "ops-agent"
        assert rule in {f["rule"] for f in row["findings"]}
        assert SECRET not in str(row)  # audit keeps the redacted text


@SSE
def test_personal_data_in_a_notification_is_masked(lictor: BackgroundServer,
                                                    sse: bool) -> None:
    agent, _ = narrate(lictor, f"Writing to {EMAIL} now.", sse)
    assert len(agent.logs) == 2 and len(agent.progress) == 2
    assert EMAIL not in agent.logs[0] and agent.logs[0].startswith("Writing to ")
    assert agent.progress[0] == agent.logs[0]
    row = notifications(lictor)[-1]
    assert row["dropped"] is False and row["action"]["method"] == "notifications/progress"
    assert EMAIL not in str(row)
