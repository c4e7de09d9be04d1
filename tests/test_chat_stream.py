"""The streamed-answer re-assembler, chunk by chunk: restore, hold tool calls, block."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from lictor.adapters.openai_stream import ChatStream
from lictor.enforcement.pii import PiiMatch, PlaceholderVault
from lictor.enforcement.types import Decision, Finding, Segment, ToolCall, Verdict

BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {**BASE, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def vault_with_email() -> PlaceholderVault:
    vault = PlaceholderVault()
    text = "mail a@example.com"
    masked = vault.mask(text, [PiiMatch("EMAIL_ADDRESS", 5, 18, 1.0)])
    assert masked == "mail <EMAIL_1>"
    return vault


def allow_all(calls: list[ToolCall], segments: Sequence[Segment] = ()) -> Decision:
    return Decision(Verdict.ALLOW)


def no_findings(text: str) -> list[Finding]:
    return []


def run(stream: ChatStream, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in chunks:
        out.extend(stream.feed(c))
    out.extend(stream.finish())
    return out


def text_of(out: list[dict[str, Any]]) -> str:
    return "".join(
        ch.get("delta", {}).get("content") or "" for c in out for ch in c.get("choices", [])
    )


def test_placeholder_split_across_chunks_is_restored() -> None:
    pieces = ["Sent to <EM", "AIL", "_1", "> today"]
    stream = ChatStream(vault_with_email(), no_findings, allow_all)
    out = run(stream, [chunk({"role": "assistant", "content": ""})]
              + [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")])
    assert text_of(out) == "Sent to a@example.com today"
    assert out[0]["choices"][0]["delta"]["role"] == "assistant"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["id"] == "c1" and c["model"] == "m" for c in out)
    assert stream.audit_content()[0]["content"] == "Sent to <EMAIL_1> today"  # masked form


def test_tool_calls_held_until_finish_then_restored() -> None:
    stream = ChatStream(vault_with_email(), no_findings, allow_all)
    head = {"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "send", "arguments": '{"to": "<EMA'}}
    first = stream.feed(chunk({"tool_calls": [head]}))
    tail = {"index": 0, "function": {"arguments": 'IL_1>"}'}}
    second = stream.feed(chunk({"tool_calls": [tail]}))
    assert first == [] and second == []  # nothing released before the call is complete
    out = stream.feed(chunk({}, "tool_calls"))
    calls = [tc for c in out for ch in c["choices"] for tc in ch["delta"].get("tool_calls", [])]
    assert len(calls) == 1 and calls[0]["id"] == "call_a"
    assert json.loads(calls[0]["function"]["arguments"]) == {"to": "a@example.com"}
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_forbidden_call_removed_with_note() -> None:
    def deny_shell(calls: list[ToolCall]) -> Decision:
        removed = [c.call_id for c in calls if c.name == "shell"]
        return Decision(Verdict.FLAG, [Finding("cedar:no-shell", Verdict.FLAG, evidence="shell")],
                        removed_tool_calls=removed)

    stream = ChatStream(PlaceholderVault(), no_findings, deny_shell)
    out = run(stream, [
        chunk({"tool_calls": [{"index": 0, "id": "x", "function": {"name": "shell",
                                                                  "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ])
    assert "`shell` was not passed on: forbidden by policy no-shell" in text_of(out)
    assert not any("tool_calls" in ch["delta"] for c in out for ch in c["choices"])
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream.removed_tool_calls == ["x"]


def test_output_rule_blocks_phrase_split_across_chunks() -> None:
    def check(text: str) -> list[Finding]:
        return [Finding("out.secret", Verdict.BLOCK)] if "TOP SECRET" in text else []

    stream = ChatStream(PlaceholderVault(), check, allow_all)
    released = stream.feed(chunk({"content": "This is TOP "}))
    assert text_of(released) == "This is TOP "
    assert stream.feed(chunk({"content": "SECRET data"})) == []  # withheld
    assert stream.blocked is not None and stream.blocked.rule_id == "out.secret"
    assert stream.feed(chunk({"content": "more"})) == []
    assert stream.finish() == []


def test_stream_without_finish_reason_is_closed() -> None:
    stream = ChatStream(PlaceholderVault(), no_findings, allow_all)
    out = run(stream, [chunk({"content": "partial <"})])
    assert text_of(out) == "partial <"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_usage_chunk_passes_through() -> None:
    stream = ChatStream(PlaceholderVault(), no_findings, allow_all)
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    out = stream.feed({**BASE, "choices": [], "usage": usage})
    assert out == [{**BASE, "choices": [], "usage": usage}]


def test_two_choices_are_kept_apart() -> None:
    stream = ChatStream(vault_with_email(), no_findings, allow_all)
    out = run(stream, [chunk({"content": "A <EMAIL"}, index=0), chunk({"content": "B"}, index=1),
                       chunk({"content": "_1>"}, index=0), chunk({}, "stop", 0),
                       chunk({}, "stop", 1)])
    by_index: dict[int, str] = {}
    for c in out:
        for ch in c["choices"]:
            by_index[ch["index"]] = by_index.get(ch["index"], "") + (
                ch["delta"].get("content") or "")
    assert by_index == {0: "A a@example.com", 1: "B"}
