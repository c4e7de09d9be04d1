"""The Messages and Responses stream governors, event by event: order kept, placeholders
restored across deltas, tool uses held until authorized and replaced in place when not."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from test_chat_stream import allow_all, no_findings, vault_with_email

from lictor.adapters.anthropic_stream import MessagesStream
from lictor.adapters.errors import ProtocolError
from lictor.adapters.responses_stream import ResponsesStream
from lictor.enforcement.types import Decision, Finding, Segment, ToolCall, Verdict


def forbid(name: str) -> Any:
    def authorize(calls: list[ToolCall], segments: Sequence[Segment] = ()) -> Decision:
        removed = [c.call_id for c in calls if c.name == name]
        return Decision(Verdict.ALLOW, [Finding("cedar:no-" + name, Verdict.ALLOW,
                                                evidence=name)], removed_tool_calls=removed)
    return authorize


def feed_all(stream: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        out.extend(stream.feed(event))
    return out if stream.blocked is not None else out + stream.finish()


def _block(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return ([{"type": "content_block_start", "index": index, "content_block": block}]
            + [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
            + [{"type": "content_block_stop", "index": index}])


def messages_events(stop: str = "tool_use") -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 5}}},
        {"type": "ping"},
        *_block(0, {"type": "text", "text": ""}, [
            {"type": "text_delta", "text": "Mail <EM"}, {"type": "text_delta", "text": "AIL_1>"}]),
        *_block(1, {"type": "tool_use", "id": "t1", "name": "shell", "input": {}}, [
            {"type": "input_json_delta", "partial_json": '{"cmd": '},
            {"type": "input_json_delta", "partial_json": '"ls"}'}]),
        *_block(2, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "after"}]),
        *_block(3, {"type": "tool_use", "id": "t2", "name": "send", "input": {}}, [
            {"type": "input_json_delta", "partial_json": '{"to": "<EMAIL_1>"}'}]),
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]


def test_messages_order_kept_and_forbidden_tool_use_replaced_in_place() -> None:
    stream = MessagesStream(vault_with_email(), no_findings, forbid("shell"))
    out = feed_all(stream, messages_events())
    kinds = [(e["type"], e.get("index")) for e in out]
    assert kinds[:2] == [("message_start", None), ("ping", None)]
    starts = [(e["index"], e["content_block"]["type"]) for e in out
              if e["type"] == "content_block_start"]
    assert starts == [(0, "text"), (1, "text"), (2, "text"), (3, "tool_use")]
    texts = {e["index"]: e["delta"].get("text") for e in out
             if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"}
    assert "".join(e["delta"]["text"] for e in out if e.get("index") == 0
                   and e["type"] == "content_block_delta") == "Mail a@example.com"
    assert "`shell` was not passed on" in texts[1] and texts[2] == "after"
    tool_json = next(e["delta"]["partial_json"] for e in out if e.get("index") == 3
                     and e["type"] == "content_block_delta")
    assert json.loads(tool_json) == {"to": "a@example.com"}
    assert [e["type"] for e in out[-2:]] == ["message_delta", "message_stop"]
    assert out[-2]["delta"]["stop_reason"] == "tool_use"  # one tool use is left
    assert stream.removed_tool_calls == ["t1"]
    assert stream.usage == {"input_tokens": 5, "output_tokens": 7}
    audit = stream.audit_content()[0]
    assert audit["content"] == "Mail <EMAIL_1>after"  # masked, as the model wrote it
    assert [c["name"] for c in audit["tool_calls"]] == ["shell", "send"]


def test_messages_all_tool_uses_removed_ends_turn() -> None:
    stream = MessagesStream(vault_with_email(), no_findings, forbid("shell"))
    events = [e for e in messages_events() if e.get("index") != 3]
    out = feed_all(stream, events)
    assert next(e for e in out if e["type"] == "message_delta")["delta"]["stop_reason"] \
        == "end_turn"


def test_messages_text_flows_before_any_tool_use() -> None:
    stream = MessagesStream(vault_with_email(), no_findings, allow_all)
    events = messages_events()
    released = [stream.feed(e) for e in events[:6]]  # message_start .. the first text stop
    assert [len(r) for r in released] == [1, 1, 1, 1, 1, 1]


def _responses_events() -> list[dict[str, Any]]:
    msg = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    call = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "shell",
            "arguments": ""}
    done_call = {**call, "arguments": '{"cmd": "ls"}'}
    full = {**msg, "content": [{"type": "output_text", "text": "Mail <EMAIL_1>"}]}
    events = [
        {"type": "response.created", "response": {"id": "r1", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": msg},
        {"type": "response.output_text.delta", **at, "delta": "Mail <EMA"},
        {"type": "response.output_text.delta", **at, "delta": "IL_1>"},
        {"type": "response.output_text.done", **at, "text": "Mail <EMAIL_1>"},
        {"type": "response.output_item.done", "output_index": 0, "item": full},
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1",
         "output_index": 1, "delta": '{"cmd": "ls"}'},
        {"type": "response.output_item.done", "output_index": 1, "item": done_call},
        {"type": "response.completed", "response": {
            "id": "r1", "status": "completed", "output": [full, done_call],
            "usage": {"total_tokens": 9}}},
    ]
    return [{**e, "sequence_number": 100 + i} for i, e in enumerate(events)]


def test_responses_sequence_renumbered_and_forbidden_call_replaced() -> None:
    stream = ResponsesStream(vault_with_email(), no_findings, forbid("shell"))
    out = feed_all(stream, _responses_events())
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    text = "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta"
                   and e["output_index"] == 0)
    assert text == "Mail a@example.com"
    final = out[-1]["response"]["output"]
    assert final[0]["content"][0]["text"] == "Mail a@example.com"
    assert final[1]["type"] == "message" and "`shell` was not passed on" in \
        final[1]["content"][0]["text"]
    added = [e["item"]["type"] for e in out if e["type"] == "response.output_item.added"]
    assert added == ["message", "message"]  # the call's place holds the note
    assert stream.usage == {"total_tokens": 9} and stream.removed_tool_calls == ["call_1"]


def test_responses_output_rule_blocks_mid_stream() -> None:
    def check(text: str) -> list[Finding]:
        return [Finding("secrets.in-output", Verdict.BLOCK)] if "EMAIL" in text else []

    stream = ResponsesStream(vault_with_email(), check, allow_all)
    out = feed_all(stream, _responses_events())
    assert stream.blocked is not None and stream.blocked.rule_id == "secrets.in-output"
    assert [e["type"] for e in out] == ["response.created", "response.output_item.added",
                                        "response.output_text.delta"]
    assert out[-1]["delta"] == "Mail "  # released before the window saw the whole phrase


def test_truncated_streams_are_upstream_errors() -> None:
    """A stream cut short (no message_stop / no final response event) is never whole."""
    messages = MessagesStream(vault_with_email(), no_findings, allow_all)
    responses = ResponsesStream(vault_with_email(), no_findings, allow_all)
    for stream, events in ((messages, messages_events()[:-1]),
                           (responses, _responses_events()[:-1])):
        for event in events:
            stream.feed(event)
        with pytest.raises(ProtocolError) as info:
            stream.finish()
        assert info.value.status == 502 and "truncated" in info.value.message
