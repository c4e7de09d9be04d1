"""Fuzz targets for the SSE reader and the stream governors (Chat, Responses, Messages):
garbage from an upstream is a 502-style `ProtocolError` (an error event the agent can read),
never a crash mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fuzz_strategies import json_values, text
from hypothesis import example, given
from hypothesis import strategies as st

from lictor.adapters.anthropic_stream import MessagesStream
from lictor.adapters.errors import ProtocolError
from lictor.adapters.openai_stream import ChatStream
from lictor.adapters.responses_stream import ResponsesStream
from lictor.adapters.sse import SseFormatError, frame, read_events, read_json_events
from lictor.enforcement.pii.placeholder_vault import PlaceholderVault
from lictor.enforcement.types import Decision, Finding, Segment, ToolCall, Verdict


async def _lines(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _read(lines: list[bytes]) -> list[Any]:
    async def go() -> list[Any]:
        return [e async for e in read_json_events(_lines(lines))]
    return asyncio.run(go())


@given(st.lists(st.binary(max_size=60), max_size=12))
@example([b"\x80"])  # found by this target: invalid UTF-8 crashed the reader
@example([b"data: {\"a\": \"\xc3\"}\n", b"\n"])
def test_arbitrary_sse_lines_are_read_or_refused(lines: list[bytes]) -> None:
    try:
        events = _read(lines)
    except SseFormatError:
        return
    assert all(isinstance(e, dict) for e in events)


@given(st.lists(st.dictionaries(text, json_values, max_size=4), max_size=6))
def test_framed_events_read_back_unchanged(events: list[dict[str, Any]]) -> None:
    wire = b"".join(frame(e) for e in events)
    lines = [line + b"\n" for line in wire.split(b"\n")]

    async def go() -> list[str]:
        return [e async for e in read_events(_lines(lines))]
    import json
    assert [json.loads(e) for e in asyncio.run(go())] == events


def _allow_calls(calls: list[ToolCall], segments: Sequence[Segment] = ()) -> Decision:
    return Decision(Verdict.ALLOW)


def _no_findings(text: str) -> list[Finding]:
    return []


chunk_choices = st.lists(st.one_of(
    json_values,
    st.fixed_dictionaries({"index": st.one_of(st.integers(0, 2), json_values),
                           "delta": st.one_of(json_values, st.fixed_dictionaries(
                               {}, optional={"content": st.one_of(text, json_values),
                                             "role": text, "tool_calls": json_values}))},
                          optional={"finish_reason": st.one_of(st.none(), text)})),
    max_size=3)

chunks = st.one_of(
    json_values,
    st.fixed_dictionaries({"id": text, "choices": st.one_of(chunk_choices, json_values)},
                          optional={"usage": json_values}),
)


@given(st.lists(chunks, max_size=6))
# found by this target: each crashed the stream with an AttributeError or ValueError
@example([None])
@example([{"choices": "x"}])
@example([{"choices": [{"index": "one", "delta": {"content": "hi"}}]}])
@example([{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": 7}}]}}]}])
@example([{"choices": [{"delta": {"content": ["a"]}, "finish_reason": "stop"}]}])
def test_chat_stream_relays_or_refuses_garbage(stream: list[Any]) -> None:
    chat = ChatStream(PlaceholderVault(), _no_findings, _allow_calls)
    try:
        for chunk in stream:
            for out in chat.feed(chunk):
                frame(out)  # everything released can be framed
        for out in chat.finish():
            frame(out)
    except ProtocolError as err:
        assert err.status == 502 and err.message


# Near-valid Responses and Messages events: known types with fields of any shape.
_index = st.one_of(st.integers(0, 2), json_values)
_items = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["message", "function_call", "mcp_call",
                                        "custom_tool_call", "reasoning", "a_future_item"]),
                       json_values)},
    optional={"content": st.one_of(json_values, st.lists(st.fixed_dictionaries(
                  {"type": st.sampled_from(["output_text", "refusal", "a_part"])},
                  optional={"text": st.one_of(text, json_values),
                            "refusal": st.one_of(text, json_values),
                            "annotations": json_values}), max_size=2)),
              "name": text, "call_id": text, "arguments": st.one_of(text, json_values),
              "input": json_values, "output": json_values, "id": text}))
responses_events = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.one_of(text, st.sampled_from([
        "response.created", "response.in_progress", "response.output_item.added",
        "response.output_item.done", "response.content_part.added",
        "response.content_part.done", "response.output_text.delta",
        "response.output_text.done", "response.refusal.delta", "response.refusal.done",
        "response.output_text.annotation.added", "response.function_call_arguments.delta",
        "response.completed", "response.failed"]))},
    optional={"output_index": _index, "content_index": _index, "item": _items,
              "delta": st.one_of(text, json_values), "text": st.one_of(text, json_values),
              "refusal": st.one_of(text, json_values), "annotation": json_values,
              "part": json_values,
              "response": st.one_of(json_values, st.fixed_dictionaries(
                  {}, optional={"output": st.one_of(json_values, st.lists(_items, max_size=3)),
                                "status": text, "usage": json_values}))}))
_blocks = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["text", "tool_use", "thinking", "server_tool_use",
                                        "web_search_tool_result", "a_future_block"]),
                       json_values)},
    optional={"text": st.one_of(text, json_values), "thinking": text, "name": text,
              "id": text, "input": json_values, "content": json_values}))
messages_events = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.one_of(text, st.sampled_from([
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop", "ping"]))},
    optional={"index": _index, "content_block": _blocks, "message": json_values,
              "usage": json_values,
              "delta": st.one_of(json_values, st.fixed_dictionaries(
                  {"type": st.one_of(st.sampled_from([
                      "text_delta", "thinking_delta", "input_json_delta", "citations_delta",
                      "signature_delta", "x_delta"]), json_values)},
                  optional={"text": st.one_of(text, json_values), "thinking": text,
                            "partial_json": text, "citation": json_values,
                            "stop_reason": text}))}))


def _governed(stream: Any, events: list[Any]) -> None:
    """Feed events in: whatever is released can be framed, or the stream is a 502."""
    try:
        for event in events:
            for out in stream.feed(event):
                frame(out)
        if stream.blocked is None:
            for out in stream.finish():
                frame(out)
    except ProtocolError as err:
        assert err.status == 502 and err.message


@given(st.lists(responses_events, max_size=8))
# found by this target: a TypeError (an unhashable item type)
@example([{"type": "response.output_item.added", "item": {"type": []}}])
@example([{"type": "response.completed", "response": {"output": [{"type": {}}]}}])
def test_responses_stream_relays_or_refuses_garbage(events: list[Any]) -> None:
    _governed(ResponsesStream(PlaceholderVault(), _no_findings, _allow_calls), events)


@given(st.lists(messages_events, max_size=8))
@example([{"type": "content_block_delta", "index": 0}])  # found by this target: a KeyError
def test_messages_stream_relays_or_refuses_garbage(events: list[Any]) -> None:
    _governed(MessagesStream(PlaceholderVault(), _no_findings, _allow_calls), events)
