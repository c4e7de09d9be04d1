"""Fuzz target for Anthropic content blocks: any block, of a known type or not, however
shaped, is parsed or refused with a 400, never an unexpected exception; every segment read
from it is put back at its own path; and an answer carrying it, whole or streamed, gives it
back unchanged when there is nothing to restore."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_chat_stream import no_findings
from test_protocol_streams import feed_all

from lictor.adapters import anthropic_messages
from lictor.adapters.anthropic_stream import MessagesStream
from lictor.adapters.errors import ProtocolError
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Decision, Verdict

KINDS = ["text", "document", "search_result", "thinking", "redacted_thinking", "image",
         "server_tool_use", "mcp_tool_use", "mcp_tool_result", "web_fetch_tool_result",
         "tool_result", "tool_use", "base64", "url", "content", "future_block"]
KEYS = ["type", "text", "data", "url", "source", "content", "input", "citations", "thinking",
        "title", "signature", "id", "name", "cited_text"]
json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8)


def typed(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object of wire-like keys, with a block or source `type`."""
    return st.builds(lambda kind, d: {**d, "type": kind}, st.sampled_from(KINDS),
                     st.dictionaries(st.sampled_from(KEYS), values, max_size=4))


wire_values = st.recursive(
    json_leaf | st.sampled_from(KINDS),
    lambda inner: (st.lists(inner, max_size=3) | typed(inner)
                   | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=16)
blocks = typed(wire_values)


@given(st.lists(blocks, min_size=1, max_size=3), st.sampled_from(["user", "assistant"]))
def test_any_block_parses_and_every_segment_is_put_back(content: list[dict[str, Any]],
                                                         role: str) -> None:
    """Any block, however shaped: refused with a 400 or parsed, and each segment's path
    points at its text (replacing them all and parsing again finds exactly the
    replacements); the answer side, whole or streamed, never fails on it and, with nothing
    to restore, gives every block but a tool use back unchanged."""
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": role, "content": content}]}
    before = json.dumps(body)
    try:
        action = anthropic_messages.parse_request(body)
    except ProtocolError as err:
        assert err.status == 400 and err.message
    else:
        masked = [json.dumps({"masked": i}) if s.tool and s.path[-1] == "input"
                  else f"masked {i}" for i, s in enumerate(action.segments)]
        applied = anthropic_messages.apply_request(body, action, masked,
                                                   Decision(Verdict.ALLOW))
        assert [s.text for s in anthropic_messages.parse_request(applied).segments] == masked
        assert json.dumps(body) == before
    resp = {"content": content, "stop_reason": "end_turn"}
    anthropic_messages.parse_response(resp)
    out = anthropic_messages.apply_response(resp, Decision(Verdict.ALLOW), PlaceholderVault())
    def others(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [b for b in blocks if b["type"] != "tool_use"]  # a tool use's input: parsed

    assert others(out["content"]) == others(content)
    stream = MessagesStream(PlaceholderVault(), no_findings,
                            lambda calls, segments=(): Decision(Verdict.ALLOW))
    events = [{"type": "message_start", "message": {}},
              *(event for i, block in enumerate(content) for event in (
                  {"type": "content_block_start", "index": i, "content_block": block},
                  {"type": "content_block_stop", "index": i})),
              {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
              {"type": "message_stop"}]
    starts = [e["content_block"] for e in feed_all(stream, events)
              if e["type"] == "content_block_start"]
    assert others(starts) == others(content)
