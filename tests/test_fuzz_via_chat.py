"""Fuzz target for the translation to Chat Completions: any Messages block or Responses
item that lictor parses is either translated or refused with a 400 naming where it sits,
never an unexpected exception (a 500); the stand-in providers' `leave_out` never fails."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_anthropic_blocks import blocks, typed, wire_values

from lictor.adapters import anthropic_messages, openai_responses
from lictor.adapters.backends import messages_to_chat, responses_to_chat
from lictor.adapters.backends.base import Route
from lictor.adapters.backends.chat_request import leave_out, refuser
from lictor.adapters.errors import ProtocolError

REFUSE = refuser(Route(name="m", backend="local", upstream_model="m"))
ITEM_KINDS = ["message", "function_call", "function_call_output", "reasoning",
              "computer_call_output", "input_image", "input_file", "input_text", "future_item"]
items = st.builds(
    lambda kind, d, content: {**d, "type": kind, "role": "user", "content": content},
    st.sampled_from(ITEM_KINDS),
    st.dictionaries(st.sampled_from(["call_id", "name", "arguments", "output", "id"]),
                    wire_values, max_size=3),
    st.lists(typed(wire_values).map(lambda d: {**d, "type": d["type"].replace(
        "image", "input_image")}), max_size=3))


def _translated_or_refused(to_chat: Any, body: dict[str, Any]) -> None:
    try:
        chat = to_chat(body, REFUSE)
    except ProtocolError as err:
        assert err.status == 400 and err.code == "unsupported_by_backend" and err.param
        assert err.message.startswith(err.param)
    else:
        assert all(m["role"] in ("system", "user", "assistant", "tool")
                   for m in chat["messages"])
    to_chat(body, leave_out)


@given(st.lists(blocks, min_size=1, max_size=3), st.sampled_from(["user", "assistant"]))
def test_any_parsed_block_is_translated_or_refused(content: list[dict[str, Any]],
                                                   role: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": role, "content": content}]}
    try:
        anthropic_messages.parse_request(body)
    except ProtocolError:
        return
    _translated_or_refused(messages_to_chat.to_chat, body)


@given(st.lists(items, min_size=1, max_size=3))
def test_any_parsed_item_is_translated_or_refused(input_items: list[dict[str, Any]]) -> None:
    body = {"model": "m", "input": input_items}
    try:
        openai_responses.parse_request(body)
    except ProtocolError:
        return
    _translated_or_refused(responses_to_chat.to_chat, body)
