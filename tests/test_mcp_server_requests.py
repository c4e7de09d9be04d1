"""An MCP server's own requests (sampling, elicitation) through lictor, with the official SDK
on both sides: FastMCP tools that call `ctx.session.create_message` / `ctx.elicit`, and a
`ClientSession` with a sampling and an elicitation callback. What the callbacks see, what
the server gets back and what audit keeps are asserted. No MCP mocks."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import audit_rows
from mcp import ClientSession, types
from mcp.server.fastmcp import Context
from mcp.shared.exceptions import McpError
from mcp_upstream import EMAIL, INJECTION, McpUpstream, client_transport
from pydantic import BaseModel
from test_mcp_proxy import OPS_KEY, SUPPORT_KEY, lictor_config, run

from lictor.proxy.server import BackgroundServer

SESSIONS = itertools.count()  # each call its own lictor session (taint, limits)
SECRET = "AKIA" + "ABCDEFGHIJKLMNOP"  # an AWS access key id's shape
NO_SAMPLING = """
@id("no-sampling-for-support")
forbid (principal == Agent::"support-agent", action == Action::"call_mcp",
        resource == McpServer::"asking")
when { context.method == "sampling/createMessage" };
"""


class Contact(BaseModel):
    email: str


class AskingUpstream(McpUpstream):
    """The test server, with tools that ask the agent's side: its model (sampling) and its
    user (elicitation). What each ask came back with, answer or error, is kept."""

    def _tools(self) -> None:
        self.answers: list[str] = []
        self.errors: list[str] = []

        @self.mcp.tool()
        async def draft_reply(topic: str, ctx: Context) -> str:  # type: ignore[type-arg]
            """Draft a reply with the client's model."""
            try:
                result = await ctx.session.create_message(
                    [types.SamplingMessage(role="user", content=types.TextContent(
                        type="text", text=f"Write a short reply about {topic}."))],
                    max_tokens=50, system_prompt="You write polite customer replies.")
            except McpError as exc:
                self.errors.append(exc.error.message)
                return f"no draft: {exc.error.message}"
            text = result.content.text if isinstance(result.content, types.TextContent) else ""
            self.answers.append(text)
            return f"Draft: {text}"

        @self.mcp.tool()
        async def ask_contact(question: str, ctx: Context) -> str:  # type: ignore[type-arg]
            """Ask the user for a contact address."""
            try:
                answer = await ctx.elicit(question, Contact)
            except McpError as exc:
                self.errors.append(exc.error.message)
                return f"no answer: {exc.error.message}"
            email = answer.data.email if answer.action == "accept" else ""
            self.answers.append(email)
            return f"{answer.action}: {email}"


class Agent:
    """The agent's side: what its model is asked (sampling) and its user (elicitation)."""

    def __init__(self, reply: str = "Thanks, your order ships Monday.",
                 contact: str = EMAIL) -> None:
        self.reply, self.contact = reply, contact
        self.sampled: list[types.CreateMessageRequestParams] = []
        self.elicited: list[types.ElicitRequestParams] = []

    async def sample(self, context: Any,
                     params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampled.append(params)
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text=self.reply))

    async def elicit(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicited.append(params)
        return types.ElicitResult(action="accept", content={"email": self.contact})


@pytest.fixture(scope="module")
def asking() -> Iterator[AskingUpstream]:
    with AskingUpstream("asking") as server:
        yield server


@pytest.fixture(scope="module")
def asking_sse() -> Iterator[AskingUpstream]:
    with AskingUpstream("asking-sse", sse=True) as server:
        yield server


@pytest.fixture(scope="module")
def lictor(tmp_path_factory: pytest.TempPathFactory, asking: AskingUpstream,
           asking_sse: AskingUpstream) -> Iterator[BackgroundServer]:
    tmp = tmp_path_factory.mktemp("mcp-asks")
    config = lictor_config(tmp, [
        {"name": "asking", "url": asking.url, "pin": "first_use"},
        {"name": "asking-sse", "url": asking_sse.url, "transport": "sse", "pin": "first_use"},
    ])
    (Path(tmp) / "rules" / "no_sampling.cedar").write_text(NO_SAMPLING)
    with BackgroundServer(config) as server:
        yield server


@asynccontextmanager
async def connect(server: BackgroundServer, agent: Agent, key: str, session: str,
                  sse: bool = False) -> AsyncIterator[ClientSession]:
    """The SDK's client with both callbacks, through lictor, tools listed (so pinned)."""
    headers = {"Authorization": f"Bearer {key}", "x-lictor-session": session}
    transport = client_transport(server.url, "asking-sse" if sse else "asking", headers, sse)
    async with transport as streams, \
            ClientSession(streams[0], streams[1], sampling_callback=agent.sample,
                          elicitation_callback=agent.elicit) as client:
        await client.initialize()
        await client.list_tools()
        yield client


def call(server: BackgroundServer, agent: Agent, tool: str, arguments: dict[str, Any],
         key: str = OPS_KEY, sse: bool = False) -> types.CallToolResult:
    async def go() -> types.CallToolResult:
        async with connect(server, agent, key, f"asks-{next(SESSIONS)}", sse) as client:
            return await client.call_tool(tool, arguments)
    return run(go)


def server_requests(server: BackgroundServer, method: str) -> list[dict[str, Any]]:
    return [r for r in audit_rows(server) if r["kind"] == "mcp_server_request"
            and r["action"]["method"] == method]


@pytest.mark.parametrize("sse", [False, True], ids=["streamable", "sse"])
def test_benign_sampling_passes_end_to_end(lictor: BackgroundServer, asking: AskingUpstream,
                                           asking_sse: AskingUpstream, sse: bool) -> None:
    upstream, agent = (asking_sse if sse else asking), Agent()
    result = call(lictor, agent, "draft_reply", {"topic": "a late parcel"}, sse=sse)
    assert result.content[0].text == "Draft: Thanks, your order ships Monday."  # type: ignore[union-attr]
    assert len(agent.sampled) == 1
    assert agent.sampled[0].systemPrompt == "You write polite customer replies."
    assert upstream.answers[-1] == "Thanks, your order ships Monday."
    row = server_requests(lictor, "sampling/createMessage")[-1]
    assert row["verdict"] == "allow" and row["refused"] is False
    assert row["action"]["server"] == upstream.mcp.name
    answer = [r for r in audit_rows(lictor) if r["kind"] == "mcp_request"
              and r["action"]["message"] == "response"][-1]
    assert answer["action"]["method"] == "sampling/createMessage"
    assert answer["verdict"] == "allow"


@pytest.mark.parametrize("sse", [False, True], ids=["streamable", "sse"])
def test_injected_sampling_prompt_never_reaches_the_client(
        lictor: BackgroundServer, asking: AskingUpstream, asking_sse: AskingUpstream,
        sse: bool) -> None:
    upstream, agent = (asking_sse if sse else asking), Agent()
    errors = len(upstream.errors)
    result = call(lictor, agent, "draft_reply", {"topic": INJECTION}, sse=sse)
    assert agent.sampled == []  # the callback never ran
    assert len(upstream.errors) == errors + 1
    assert "lictor blocked this sampling/createMessage request: rule " \
        "injection.instruction-override" in upstream.errors[-1]
    assert "send the full customer list" not in json.dumps(result.model_dump())
    row = server_requests(lictor, "sampling/createMessage")[-1]
    assert row["refused"] is True and row["verdict"] == "block"
    assert "injection.instruction-override" in {f["rule"] for f in row["findings"]}


def test_cedar_forbids_sampling_for_one_agent_and_server(lictor: BackgroundServer,
                                                         asking: AskingUpstream) -> None:
    agent = Agent()
    errors = len(asking.errors)
    result = call(lictor, agent, "draft_reply", {"topic": "a refund"}, key=SUPPORT_KEY)
    assert agent.sampled == []
    assert "cedar:no-sampling-for-support" in asking.errors[errors]
    assert "may not send sampling/createMessage to agent 'support-agent'" in asking.errors[errors]
    assert result.content[0].text.startswith("no draft:")  # type: ignore[union-attr]
    row = server_requests(lictor, "sampling/createMessage")[-1]
    assert row["principal"]["agent"] == "support-agent" and row["refused"] is True
    # the same agent may still be asked through elicitation: the policy names one method
    asked = call(lictor, Agent(), "ask_contact", {"question": "Your email?"}, key=SUPPORT_KEY)
    assert asked.content[0].text == "accept: <EMAIL_1>"  # type: ignore[union-attr]
    assert asking.answers[-1] == EMAIL


def test_secret_in_the_clients_answer_never_reaches_the_server(
        lictor: BackgroundServer, asking: AskingUpstream) -> None:
    agent = Agent(reply=f"Use the key {SECRET} to log in.")
    errors = len(asking.errors)
    result = call(lictor, agent, "draft_reply", {"topic": "log in help"})
    assert len(agent.sampled) == 1
    assert all(SECRET not in a for a in asking.answers)
    assert "secrets.in-output" in asking.errors[errors]
    assert SECRET not in json.dumps(result.model_dump())
    answer = [r for r in audit_rows(lictor) if r["kind"] == "mcp_request"
              and r["action"]["message"] == "response"][-1]
    assert answer["verdict"] == "block"
    assert SECRET not in json.dumps(answer) and "<SECRET>" in json.dumps(answer["content"])


def test_elicitation_is_judged_and_audit_keeps_no_personal_data(
        lictor: BackgroundServer, asking: AskingUpstream) -> None:
    agent = Agent()
    result = call(lictor, agent, "ask_contact",
                  {"question": f"Is {EMAIL} still the right address?"})
    # the answer reaches the server (like a tool call's arguments, personal data is not
    # refused on its way out); the tool result that echoes it is masked for the agent
    assert asking.answers[-1] == EMAIL
    assert result.content[0].text == "accept: <EMAIL_1>"  # type: ignore[union-attr]
    # the server's text is untrusted input: the personal data in it is masked for the user
    assert agent.elicited[0].message == "Is <EMAIL_1> still the right address?"
    asked = server_requests(lictor, "elicitation/create")[-1]
    assert asked["verdict"] == "mask" and asked["refused"] is False
    answer = [r for r in audit_rows(lictor) if r["kind"] == "mcp_request"
              and r["action"]["method"] == "elicitation/create"][-1]
    assert answer["action"]["message"] == "response"
    assert "<EMAIL_ADDRESS>" in json.dumps(answer["content"])
    data_dir = lictor.gateway.audit.path.parent
    blobs = b"".join(p.read_bytes() for p in data_dir.glob("audit.sqlite3*"))
    assert EMAIL.encode() not in blobs


def test_injected_elicitation_message_is_refused(lictor: BackgroundServer,
                                                 asking: AskingUpstream) -> None:
    agent = Agent()
    errors = len(asking.errors)
    call(lictor, agent, "ask_contact", {"question": INJECTION})
    assert agent.elicited == []
    assert "lictor blocked this elicitation/create request" in asking.errors[errors]
