"""Tools the provider runs itself (OpenAI `mcp`, `web_search_preview`; Anthropic server
tools and `mcp_servers`) are Cedar `call_tool` offers of `Tool::"hosted:<type>"`: none
reaches the upstream unless a policy permits it, and each refusal is flagged and audited.
Real `openai` and `anthropic` SDKs through lictor to loopback passthrough providers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import StartLictor, audit_rows
from mock_anthropic import MockAnthropic
from mock_openai import MockOpenAI
from test_anthropic_messages import client as claude_client
from test_openai_sdk import client

from lictor.proxy.server import BackgroundServer

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
REMOTE_MCP = {"type": "mcp", "server_label": "anything", "server_url": "https://Evil.example/mcp",
              "require_approval": "never"}
WEB_SEARCH = {"type": "web_search_preview"}
CLAUDE_WEATHER = {"name": "get_weather", "description": "Weather for a city",
                  "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
CLAUDE_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
CLAUDE_MCP = [{"type": "url", "url": "https://mcp.example.com/sse", "name": "remote"}]
PERMIT_SEARCH = """\
@id("team-web-search")
permit (principal, action == Action::"call_tool", resource == Tool::"hosted:web_search_preview");
"""
NO_DEFAULT = "cedar:no policy permits it"


def _rules(tmp_path: Path, policy: str = "") -> dict[str, Any]:
    folder = tmp_path / "team-rules"
    folder.mkdir(exist_ok=True)
    if policy:
        (folder / "hosted.cedar").write_text(policy)
    return {"packs": ["default"], "paths": [str(folder)]}


def _start(start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
           claude: MockAnthropic, policy: str = "") -> BackgroundServer:
    return start_lictor(rules=_rules(tmp_path, policy), models=[
        {"name": "mock-gpt", "backend": "passthrough", "base_url": upstream.base_url},
        {"name": "mock-claude", "backend": "passthrough", "base_url": claude.base_url,
         "anthropic_version": "2023-06-01"},
    ])


def _request_record(server: BackgroundServer) -> dict[str, Any]:
    return [r for r in audit_rows(server) if r.get("kind") == "model_request"][-1]


def test_responses_hosted_mcp_never_reaches_upstream(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    server = _start(start_lictor, tmp_path, upstream, claude)
    resp = client(server).responses.create(model="mock-gpt", input="Hello there.",
                                           tools=[WEATHER, REMOTE_MCP, WEB_SEARCH])
    assert resp.output_text == "Hello there."
    sent = upstream.received[-1].body
    assert [t["type"] for t in sent["tools"]] == ["function"]  # the agent's function stays
    record = _request_record(server)
    assert record["verdict"] == "flag"
    assert [f["rule"] for f in record["findings"]] == [NO_DEFAULT, NO_DEFAULT]
    assert [f["evidence"] for f in record["findings"]] == ["hosted:mcp",
                                                           "hosted:web_search_preview"]
    assert record["action"]["removed_hosted_tools"] == ["hosted:mcp@evil.example",
                                                        "hosted:web_search_preview"]


@pytest.mark.parametrize("stream", [False, True])
def test_responses_permitted_hosted_tool_reaches_upstream(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic, stream: bool) -> None:
    server = _start(start_lictor, tmp_path, upstream, claude, PERMIT_SEARCH)
    answer = client(server).responses.create(model="mock-gpt", input="Hello there.",
                                             tools=[REMOTE_MCP, WEB_SEARCH], stream=stream)
    if stream:
        list(answer)
    assert upstream.received[-1].body["tools"] == [WEB_SEARCH]
    assert [f["evidence"] for f in _request_record(server)["findings"]] == ["hosted:mcp"]


def test_responses_only_hosted_tools_refused_drops_tools(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    server = _start(start_lictor, tmp_path, upstream, claude)
    client(server).responses.create(model="mock-gpt", input="Hi.", tools=[REMOTE_MCP],
                                    tool_choice="auto")
    sent = upstream.received[-1].body
    assert "tools" not in sent and "tool_choice" not in sent


def test_responses_tool_choice_of_refused_hosted_tool_is_refused(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    """Taking the tool out would leave a request naming a tool it lacks: refused instead."""
    server = _start(start_lictor, tmp_path, upstream, claude)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(server).responses.create(model="mock-gpt", input="Hi.",
                                        tools=[WEATHER, WEB_SEARCH],
                                        tool_choice={"type": "web_search_preview"})
    assert NO_DEFAULT in info.value.message and "hosted:web_search_preview" in info.value.message
    assert upstream.received == []
    assert audit_rows(server)[-1]["kind"] == "rejected_request"


def test_responses_unknown_tool_type_fails_closed(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    server = _start(start_lictor, tmp_path, upstream, claude)
    client(server).responses.create(model="mock-gpt", input="Hi.", tools=[WEATHER],
                                    extra_body={"tools": [WEATHER, {"type": "future_tool"}]})
    assert upstream.received[-1].body["tools"] == [WEATHER]


@pytest.mark.parametrize("stream", [False, True])
def test_messages_server_tools_and_mcp_servers_never_reach_upstream(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic, stream: bool) -> None:
    server = _start(start_lictor, tmp_path, upstream, claude)
    kwargs: dict[str, Any] = {
        "model": "mock-claude", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello there."}],
        "tools": [CLAUDE_WEATHER, CLAUDE_SEARCH], "extra_body": {"mcp_servers": CLAUDE_MCP}}
    if stream:
        with claude_client(server).messages.stream(**kwargs) as s:
            s.get_final_message()
    else:
        claude_client(server).messages.create(**kwargs)
    sent = claude.received[-1].body
    assert sent["tools"] == [CLAUDE_WEATHER] and "mcp_servers" not in sent
    record = _request_record(server)
    assert [f["evidence"] for f in record["findings"]] == ["hosted:web_search_20250305",
                                                           "hosted:mcp"]
    assert record["action"]["removed_hosted_tools"][-1] == "hosted:mcp@mcp.example.com"


def test_messages_tool_choice_of_refused_server_tool_is_refused(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    server = _start(start_lictor, tmp_path, upstream, claude)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        claude_client(server).messages.create(
            model="mock-claude", max_tokens=64, tools=[CLAUDE_WEATHER, CLAUDE_SEARCH],
            tool_choice={"type": "tool", "name": "web_search"},
            messages=[{"role": "user", "content": "Search."}])
    assert NO_DEFAULT in info.value.message
    assert claude.received == []


def test_messages_permitted_server_tool_reaches_upstream(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    """A team permits one MCP host only: `context.host` tells the servers apart."""
    policy = ('@id("team-mcp-host")\npermit (principal, action == Action::"call_tool", '
              'resource == Tool::"hosted:mcp") when { context.host == "mcp.example.com" };\n')
    server = _start(start_lictor, tmp_path, upstream, claude, policy)
    servers = [*CLAUDE_MCP, {"type": "url", "url": "https://other.example/", "name": "other"}]
    claude_client(server).messages.create(
        model="mock-claude", max_tokens=64, tools=[CLAUDE_WEATHER],
        messages=[{"role": "user", "content": "Hi."}], extra_body={"mcp_servers": servers})
    sent = claude.received[-1].body
    assert sent["mcp_servers"] == CLAUDE_MCP and sent["tools"] == [CLAUDE_WEATHER]


def test_messages_mcp_toolset_without_name_is_a_hosted_offer(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    """A tool type lictor does not know (here with no `name`) is a hosted tool: taken out."""
    server = _start(start_lictor, tmp_path, upstream, claude)
    claude_client(server).messages.create(
        model="mock-claude", max_tokens=64, messages=[{"role": "user", "content": "Hi."}],
        extra_body={"tools": [CLAUDE_WEATHER, {"type": "mcp_toolset",
                                               "mcp_server_name": "remote"}],
                    "mcp_servers": CLAUDE_MCP})
    sent = claude.received[-1].body
    assert sent["tools"] == [CLAUDE_WEATHER] and "mcp_servers" not in sent
    assert [f["evidence"] for f in _request_record(server)["findings"]] == [
        "hosted:mcp_toolset", "hosted:mcp"]


def test_messages_agent_run_tools_are_ordinary_tools(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    """Anthropic-defined tools the agent runs (bash, the text editor) are offered by name,
    like custom tools: the editor goes on; bash is a shell tool, which policy takes out."""
    server = _start(start_lictor, tmp_path, upstream, claude)
    editor = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
    claude_client(server).messages.create(
        model="mock-claude", max_tokens=64, messages=[{"role": "user", "content": "Hi."}],
        extra_body={"tools": [CLAUDE_WEATHER, {"type": "bash_20250124", "name": "bash"},
                              editor]})
    assert claude.received[-1].body["tools"] == [CLAUDE_WEATHER, editor]
    record = _request_record(server)
    assert [(f["rule"], f["evidence"]) for f in record["findings"]] == [
        ("cedar:no-shell-tools", "bash")]
    assert "removed_hosted_tools" not in record["action"]


def test_chat_web_search_is_a_hosted_offer(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI,
        claude: MockAnthropic) -> None:
    """A Chat request's `web_search_options` has the provider search the web: refused by
    default (a search model would search anyway, so it is not just taken out), passed on
    where a team permits it."""
    options = {"search_context_size": "low"}
    server = _start(start_lictor, tmp_path, upstream, claude)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(server).chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "News?"}],
            web_search_options=options)  # type: ignore[arg-type]
    assert NO_DEFAULT in info.value.message and "hosted:web_search_options" in info.value.message
    assert info.value.param == "web_search_options"
    assert upstream.received == []
    permit = ('@id("team-chat-search")\npermit (principal, action == Action::"call_tool", '
              'resource == Tool::"hosted:web_search_options");\n')
    server = _start(start_lictor, tmp_path, upstream, claude, permit)
    client(server).chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "News?"}],
        web_search_options=options)  # type: ignore[arg-type]
    assert upstream.received[-1].body["web_search_options"] == options


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_search_model_searches_only_where_permitted(
        start_lictor: StartLictor, tmp_path: Path, upstream: MockOpenAI, api: str) -> None:
    """A search model (`*-search-preview`, `*-search-api`) searches the web on every
    request, asked to or not: each request is a hosted web search offer, refused (403 naming
    the model) unless a team permits it. A route can say what its model runs itself."""
    models = [
        {"name": "news", "backend": "passthrough", "base_url": upstream.base_url,
         "upstream_model": "gpt-4o-mini-search-preview"},
        {"name": "plain", "backend": "passthrough", "base_url": upstream.base_url,
         "upstream_model": "gpt-5-search-api", "hosted_tools": []},
        {"name": "in-house-searcher", "backend": "passthrough", "base_url": upstream.base_url,
         "hosted_tools": ["web_search_options"]},
    ]

    def ask(server: BackgroundServer, model: str) -> None:
        if api == "chat":
            client(server).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "News?"}])
        else:
            client(server).responses.create(model=model, input="News?")

    server = start_lictor(rules=_rules(tmp_path, ""), models=models)
    for model in ("news", "in-house-searcher"):
        with pytest.raises(openai.PermissionDeniedError) as info:
            ask(server, model)
        assert info.value.param == "model" and f"the model {model!r} runs" in info.value.message
        assert "hosted:web_search_options" in info.value.message
    assert upstream.received == []
    ask(server, "plain")  # configured as running nothing itself
    assert len(upstream.received) == 1
    permit = ('@id("team-news")\npermit (principal, action == Action::"call_tool", '
              'resource == Tool::"hosted:web_search_options");\n')
    server = start_lictor(rules=_rules(tmp_path, permit), models=models)
    ask(server, "news")
    assert len(upstream.received) == 2
    assert "hosted_tools" in _request_record(server)["action"]
