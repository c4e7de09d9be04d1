"""Messages and Responses served by a chat backend (LiteLLM Router to a loopback OpenAI
provider, the local model) never lose content silently: images, documents, files and
structured output reach the provider translated; what Chat Completions cannot carry gets
the protocol's own 400 naming it, nothing is sent, and the refusal is audited.
Real `anthropic` and `openai` SDKs through lictor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import StartLictor, audit_rows
from mock_openai import MockOpenAI
from test_anthropic_messages import client as claude_client
from test_anthropic_messages import run as claude_run
from test_hosted_tools import _rules
from test_litellm_backend import router_config
from test_openai_sdk import client

from lictor.adapters.backends.chat_request import leave_out
from lictor.adapters.backends.messages_to_chat import to_chat as messages_to_chat
from lictor.adapters.backends.responses_to_chat import to_chat as responses_to_chat
from lictor.adapters.errors import ProtocolError
from lictor.proxy.server import BackgroundServer

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
       "AAAABJRU5ErkJggg==")
PDF = "JVBERi0xLjQKJcfsj6IKJSVFT0YK"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}},
          "required": ["city"], "additionalProperties": False}
PERMITS = "".join(
    f'@id("team-{kind}")\npermit (principal, action == Action::"call_tool", '
    f'resource == Tool::"hosted:{kind}");\n'
    for kind in ("web_search", "web_search_20250305", "mcp"))


@pytest.fixture
def provider() -> Iterator[MockOpenAI]:
    with MockOpenAI() as mock:
        yield mock


@pytest.fixture
def server(start_lictor: StartLictor, tmp_path: Path, provider: MockOpenAI) -> BackgroundServer:
    """`smart`: LiteLLM Router to the loopback provider; `lictor-local`: the local model.
    A team permits web search and MCP servers, so only the backend can refuse them."""
    return start_lictor(
        rules=_rules(tmp_path, PERMITS),
        models=[{"name": "smart", "backend": "litellm", "upstream_model": "backup"},
                {"name": "lictor-local", "backend": "local"}],
        litellm=router_config(provider.base_url, provider.base_url))


def sent(provider: MockOpenAI) -> dict[str, Any]:
    assert [r.path for r in provider.received] == ["/v1/chat/completions"]
    return provider.received[0].body


# -- translated -----------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_messages_images_and_documents_reach_the_chat_backend(
        server: BackgroundServer, provider: MockOpenAI, stream: bool) -> None:
    text, _, _ = claude_run(server, stream, model="smart", messages=[
        {"role": "user", "content": "Check the weather tool."},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "c2ln"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                {"type": "text", "text": "Sunny."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}}]},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            {"type": "document", "title": "Staff list",
             "source": {"type": "text", "media_type": "text/plain", "data": "Ann, Bob."}},
            {"type": "document", "title": "report.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
            {"type": "text", "text": "Describe them."}]}])
    # the provider's model echoes the last user turn's text: the document's is in it
    assert text.endswith("Document: Staff list\n\nAnn, Bob.\nDescribe them.")
    messages = sent(provider)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert "Use the tool." not in str(messages)  # earlier thinking is left out
    assert messages[2]["tool_call_id"] == "toolu_1"
    assert messages[2]["content"].startswith("Sunny.\n[1 attachment")
    assert messages[3]["content"] == [
        {"type": "text", "text": "Attachments of the result of tool call toolu_1:"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "text", "text": "Document: Staff list\n\nAnn, Bob."},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}",
                                  "filename": "report.pdf"}},
        {"type": "text", "text": "Describe them."}]


@pytest.mark.parametrize("stream", [False, True])
def test_messages_structured_output_reaches_the_chat_backend(
        server: BackgroundServer, provider: MockOpenAI, stream: bool) -> None:
    claude_run(server, stream, model="smart", messages=[{"role": "user", "content": "Hi."}],
               extra_body={"output_format": {"type": "json_schema", "schema": SCHEMA}})
    assert sent(provider)["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": SCHEMA, "strict": True}}


@pytest.mark.parametrize("stream", [False, True])
def test_responses_image_file_and_text_format_reach_the_chat_backend(
        server: BackgroundServer, provider: MockOpenAI, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": "smart", "input": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is in these?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}",
             "detail": "low"},
            {"type": "input_file", "filename": "report.pdf",
             "file_data": f"data:application/pdf;base64,{PDF}"}]}],
        "text": {"format": {"type": "json_schema", "name": "weather", "schema": SCHEMA,
                            "strict": True}}}
    if stream:
        events = list(client(server).responses.create(**kwargs, stream=True))
        assert events[-1].type == "response.completed"
        answer = events[-1].response.output_text
    else:
        answer = client(server).responses.create(**kwargs).output_text
    assert answer == "What is in these?"
    body = sent(provider)
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}",
                                            "detail": "low"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}",
                                  "filename": "report.pdf"}}]}]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "weather", "schema": SCHEMA, "strict": True}}


def test_refused_hosted_tool_is_gone_before_translation(
        start_lictor: StartLictor, tmp_path: Path, provider: MockOpenAI) -> None:
    """With no team permit, Cedar takes the search tool out: the request is served, not
    refused by the backend for a tool that is no longer there."""
    server = start_lictor(
        rules=_rules(tmp_path),
        models=[{"name": "smart", "backend": "litellm", "upstream_model": "backup"}],
        litellm=router_config(provider.base_url, provider.base_url))
    answer = client(server).responses.create(model="smart", input="Hello there.",
                                             tools=[{"type": "web_search"}])
    assert answer.output_text == "Hello there."
    assert "tools" not in sent(provider)
    record = [r for r in audit_rows(server) if r.get("kind") == "model_request"][-1]
    assert record["action"]["removed_hosted_tools"] == ["hosted:web_search"]


# -- refused --------------------------------------------------------------------------

CLAUDE_REFUSED = {
    "mcp_servers": ({"extra_body": {"mcp_servers": [
        {"type": "url", "url": "https://mcp.example.com/sse", "name": "remote"}]}},
        "mcp_servers", "`mcp_servers`"),
    "server tool": ({"extra_body": {"tools": [
        {"type": "web_search_20250305", "name": "web_search"}]}},
        "tools[0]", "`web_search_20250305` tool"),
    "server tool result": ({"messages": [
        {"role": "user", "content": "Search."},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
             "input": {"query": "rome"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}]},
        {"role": "user", "content": "And?"}]},
        "messages[1].content[0]", "`server_tool_use` block"),
    "image by file id": ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]},
        "messages[0].content[0]", "`image` block with a `file` source"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", list(CLAUDE_REFUSED))
def test_messages_refused_with_anthropic_400(server: BackgroundServer, provider: MockOpenAI,
                                             case: str, stream: bool) -> None:
    kwargs, where, what = CLAUDE_REFUSED[case]
    kwargs = {"messages": [{"role": "user", "content": "Hi."}], **kwargs}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_run(server, stream, model="smart", **kwargs)
    assert info.value.status_code == 400
    error = info.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{where}: model 'smart' is served by LiteLLM Router")
    assert what in error["message"] and "passthrough route" in error["message"]
    assert provider.received == []
    assert_refusal_audited(server, where)


RESPONSES_REFUSED = {
    "web_search": ({"tools": [{"type": "web_search"}]}, "tools[0]", "`web_search` tool"),
    "computer_call_output": ({"input": [
        {"type": "computer_call_output", "call_id": "call_1",
         "output": {"type": "computer_screenshot", "image_url": "https://x.test/s.png"}},
        {"role": "user", "content": "Go on."}]},
        "input[0]", "`computer_call_output` item"),
    "previous_response_id": ({"previous_response_id": "resp_1"}, "previous_response_id",
                             "`previous_response_id`"),
    "image by file id": ({"input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file_1"}]}]},
        "input[0].content[0]", "`input_image` part given by `file_id`"),
    "instructions as items": ({"instructions": [
        {"role": "developer", "content": "Be brief."}]}, "instructions",
        "`instructions` as input items"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", list(RESPONSES_REFUSED))
def test_responses_refused_with_openai_400(server: BackgroundServer, provider: MockOpenAI,
                                           case: str, stream: bool) -> None:
    kwargs, where, what = RESPONSES_REFUSED[case]
    kwargs = {"input": "Hi.", **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        answer = client(server).responses.create(model="smart", stream=stream, **kwargs)
        list(answer) if stream else answer
    assert info.value.status_code == 400
    error = info.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (where, "unsupported_by_backend")
    assert what in error["message"] and "LiteLLM Router" in error["message"]
    assert provider.received == []
    assert_refusal_audited(server, where)


def test_local_model_refusal_names_it(server: BackgroundServer) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_client(server).messages.create(
            model="lictor-local", max_tokens=64, messages=[{"role": "user", "content": "Hi."}],
            extra_body={"tools": [{"type": "text_editor_20250728",
                                  "name": "str_replace_based_edit_tool"}]})
    assert "model 'lictor-local' is served by the built-in local model" in info.value.message
    assert "`text_editor_20250728` tool" in info.value.message


def assert_refusal_audited(server: BackgroundServer, where: str) -> None:
    """The request's checks and its refusal, in one commit, as the last records."""
    request, refusal = audit_rows(server)[-2:]
    assert request["kind"] == "model_request" and request["verdict"] in ("allow", "flag")
    assert refusal["kind"] == "rejected_request"
    assert refusal["request_id"] == request["request_id"]
    assert (refusal["status"], refusal["error_code"]) == (400, "unsupported_by_backend")
    assert refusal["reason"].startswith(where)


# -- the translation itself ---------------------------------------------------------------

def refuse(what: str, where: str) -> None:
    raise ProtocolError(400, f"{where}: {what}")


def test_parallel_tool_results_keep_their_run_before_media() -> None:
    """Chat needs every tool message of a turn right after it: a result's image waits
    until the run ends, and leads the user's own next message."""
    call = {"type": "function_call", "name": "shot", "arguments": "{}"}
    chat = responses_to_chat({"model": "m", "input": [
        {"role": "assistant", "content": [{"type": "output_text", "text": "Two shots."}]},
        {**call, "call_id": "c1"}, {**call, "call_id": "c2"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_image", "image_url": "https://x.test/1.png"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "done"},
        {"role": "user", "content": "Compare."}]}, refuse)
    messages = chat["messages"]
    assert [m["role"] for m in messages] == ["assistant", "tool", "tool", "user"]
    assert messages[0]["content"] == "Two shots."  # one assistant turn: text and calls
    assert [c["id"] for c in messages[0]["tool_calls"]] == ["c1", "c2"]
    assert messages[1]["content"].startswith("[1 attachment")
    assert messages[3]["content"][1:] == [
        {"type": "image_url", "image_url": {"url": "https://x.test/1.png"}},
        {"type": "text", "text": "Compare."}]


def test_documents_by_content_and_search_results_as_text() -> None:
    chat = messages_to_chat({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Notes", "context": "From the wiki.", "source": {
            "type": "content", "content": [{"type": "text", "text": "Line one."}]}},
        {"type": "search_result", "source": "https://x.test/a", "title": "A",
         "content": [{"type": "text", "text": "Found."}]}]}]}, refuse)
    assert chat["messages"] == [{"role": "user", "content":
                                 "Document: Notes\n\nFrom the wiki.\nLine one.\n"
                                 "Search result: A (https://x.test/a)\n\nFound."}]


@pytest.mark.parametrize("source", [
    {"type": "url", "url": "https://x.test/a.pdf"},
    {"type": "file", "file_id": "file_1"},
])
def test_documents_chat_cannot_carry_are_refused(source: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "document", "source": source}]}]}
    with pytest.raises(ProtocolError, match=r"messages\[0\]\.content\[0\]: a `document` block"):
        messages_to_chat(body, refuse)
    assert messages_to_chat(body, leave_out)["messages"] == []
