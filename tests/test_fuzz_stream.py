"""Fuzz targets for the SSE reader and the chat stream re-assembler: garbage from an upstream
is a 502-style `ProtocolError` (an error event the agent can read), never a crash mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fuzz_strategies import json_values, text
from hypothesis import example, given
from hypothesis import strategies as st

from lictor.adapters.errors import ProtocolError
from lictor.adapters.openai_stream import ChatStream
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
