"""Streamed Anthropic Messages, governed event by event without buffering the answer.

Text deltas flow through as they arrive, restored and checked on a sliding window. From
the first `tool_use` block on, events wait until `message_delta`; then the tool uses are
authorized together and released (each as start, one `input_json_delta`, stop) or replaced
by a text block at the same index saying why. A block of any other type but thinking (a
provider-run tool's call or result, a type newer than lictor) is held until its
`content_block_stop` and judged whole, as the whole answer's blocks are, before it is
released with placeholders restored or the stream is blocked. Event order and framing stay
Anthropic's.
"""

from __future__ import annotations

import json
from typing import Any

from lictor.adapters.anthropic_blocks import (
    kind_of,
    read_block,
    restore_json,
    restored,
    strings,
)
from lictor.adapters.anthropic_messages import error_body
from lictor.adapters.content_walk import audit_items
from lictor.adapters.errors import ProtocolError
from lictor.adapters.openai_chat import refusal_notes
from lictor.adapters.sse import named_frame as frame
from lictor.adapters.stream_text import (
    AuthorizeCalls,
    CheckText,
    HeldToolCalls,
    TextGate,
    checked_event,
    malformed,
)
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Decision, Segment, ToolCall, Trust

STREAMED = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})  # not held whole


def error_frame(err: ProtocolError) -> bytes:
    return frame(error_body(err))


class MessagesStream(HeldToolCalls):
    """Feed upstream events in; get the events to send to the agent out."""

    def __init__(self, vault: PlaceholderVault, check_text: CheckText,
                 authorize: AuthorizeCalls) -> None:
        super().__init__(authorize)
        self._vault = vault
        self._check = check_text
        self._texts: dict[int, TextGate] = {}
        self._thoughts: dict[int, TextGate] = {}  # thinking blocks: restored, checked alike
        self._tools: dict[int, tuple[dict[str, Any], list[str]]] = {}  # start block, json
        self._whole: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}  # start
        # block and delta events of a block held until it is read whole
        self._waiting: list[dict[str, Any] | int] = []  # events (or tool indexes) held back
        self._delta: dict[str, Any] = {}  # the held message_delta
        self.stop_reason: str | None = None
        self._stopped = False  # message_stop seen: the stream is whole
        self.usage: dict[str, Any] = {}
        self._audit_calls: list[dict[str, str]] = []  # every tool use, masked, for the audit
        self._audit_items: list[tuple[str | None, str]] = []  # other texts: see audit_items

    def _out(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._tools and not self._delta:  # a tool use is open: wait for message_delta
            self._waiting.extend(events)
            return []
        return events

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Process one upstream event; return what may be released now."""
        if self.blocked is not None:
            return []
        checked_event(event, ("index",), ("content_block", "delta", "message", "usage"))
        kind = event.get("type")
        index = event.get("index")
        if kind == "message_start":
            message: dict[str, Any] = (event["message"] if isinstance(event.get("message"), dict)
                                       else {})
            if message.get("content"):  # the SDK's snapshot starts from it: never unread
                raise malformed("its message_start carries content (it must be empty; "
                                "blocks come as their own events)")
            self.usage.update(message.get("usage") or {})
        elif kind == "content_block_start" and isinstance(index, int):
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._tools[index] = (block, [])
                self._waiting.append(index)
                return []
            if block.get("type") == "text":
                self._texts[index] = TextGate.of(self._vault)
            elif block.get("type") == "thinking":
                self._thoughts[index] = TextGate.of(self._vault)
            elif kind_of(block) not in STREAMED:
                self._whole[index] = (block, [])
                return []
        elif kind == "content_block_delta" and isinstance(index, int):
            delta = event.get("delta") or {}
            if index in self._whole:
                self._whole[index][1].append(event)
                return []
            if index in self._tools:
                self._tools[index][1].append(str(delta.get("partial_json") or ""))
                return []
            gate, key = self._gate(index)
            if gate is not None and isinstance(delta.get(key), str):
                findings, text = gate.feed(delta[key], self._check)
                self.note(findings)
                if self.blocked is not None:
                    return []
                return self._out([{**event, "delta": {**delta, key: text}}] if text else [])
            if delta.get("type") != "signature_delta":  # a citation, or a newer delta type
                return self._out(self._read_whole(event, delta))
        elif kind == "content_block_stop" and isinstance(index, int):
            if index in self._tools:
                return []
            if index in self._whole:
                return self._out(self._judged(index, event))
            gate, key = self._gate(index)
            rest = gate.flush() if gate is not None else ""
            tail = [{"type": "content_block_delta", "index": index,
                     "delta": {"type": f"{key}_delta", key: rest}}] if rest else []
            return self._out([*tail, event])
        elif kind == "message_stop":
            self._stopped = True
        elif kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            self.stop_reason = (event.get("delta") or {}).get("stop_reason")
            if self._tools:
                self._delta = event
                return self.decide(self._calls(), self.stop_reason)
        return self._out([event])

    def _gate(self, index: int) -> tuple[TextGate | None, str]:
        """The gate of a text or thinking block, and the delta field it streams."""
        if index in self._thoughts:
            return self._thoughts[index], "thinking"
        return self._texts.get(index), "text"

    def _read_whole(self, event: dict[str, Any], delta: dict[str, Any]) -> list[dict[str, Any]]:
        """A delta of a streamed block that is not its text: a citation (quoting a document
        or web page) or a type newer than lictor, judged whole as third-party text and
        restored before release."""
        segments: list[Segment] = []
        strings(delta, Trust.TOOL, ("delta",), segments)
        if segments:
            self.note(self._authorize([], segments).findings)
            kind = "citations" if delta.get("type") == "citations_delta" else str(
                delta.get("type"))
            self._audit_items.extend((kind, s.text) for s in segments)
        return [] if self.blocked is not None else [restored(event, self._vault)]

    def _judged(self, index: int, stop: dict[str, Any]) -> list[dict[str, Any]]:
        """A held block's events, released once its strings are judged (as in a whole
        answer: results with the rules for content a model reads), or none if blocked."""
        start, deltas = self._whole.pop(index)
        raw = "".join(str(e["delta"].get("partial_json") or "") for e in deltas
                      if _is_json(e))
        others = [e for e in deltas if not _is_json(e)]
        block = start
        if raw:  # a provider-run call's input, streamed as JSON text
            try:
                block = {**start, "input": json.loads(raw)}
            except ValueError:
                block = {**start, "input": raw}
        segments: list[Segment] = []
        read_block(block, Trust.ASSISTANT, ("content", index), segments)
        for k, event in enumerate(others):
            strings(event.get("delta"), Trust.TOOL, ("content", index, "delta", k), segments)
        if segments:
            self.note(self._authorize([], segments).findings)
            self._audit_items.extend((kind_of(block), s.text) for s in segments)
        if self.blocked is not None:
            return []
        begin = {"type": "content_block_start", "index": index,
                 "content_block": restored(start, self._vault)}
        rest = [restored(e, self._vault) for e in others]
        if not raw:
            return [begin, *rest, stop]
        value = block["input"]
        text = (self._vault.restore(raw) if isinstance(value, str)
                else json.dumps(restore_json(value, self._vault)))
        return [begin, {"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": text}},
                *rest, stop]

    def _calls(self) -> list[ToolCall]:
        out = []
        for block, parts in self._tools.values():
            raw = "".join(parts) or "{}"
            try:
                args = json.loads(raw)
            except ValueError:
                args = {}
            out.append(ToolCall(str(block.get("name") or ""),
                                args if isinstance(args, dict) else {"value": args},
                                str(block.get("id") or ""), raw))
        return out

    def release(self, index: int, calls: list[ToolCall], decision: Decision,
                finish: str | None) -> list[dict[str, Any]]:
        """The held events, with each tool use released or replaced by a note."""
        removed = self.settle(decision)
        if removed is None:
            return []
        by_index = dict(zip(self._tools, calls, strict=True))
        out: list[dict[str, Any]] = []
        for item in self._waiting:
            if not isinstance(item, int):
                out.append(item)
                continue
            call = by_index[item]
            if call.call_id in removed:
                self.removed_tool_calls.append(call.call_id)
                note = "\n".join(refusal_notes(decision, [call]))
                out += [{"type": "content_block_start", "index": item,
                         "content_block": {"type": "text", "text": ""}},
                        {"type": "content_block_delta", "index": item,
                         "delta": {"type": "text_delta", "text": note}}]
            else:
                start = self._tools[item][0]
                restored = json.dumps(restore_json(call.arguments, self._vault))
                out += [{"type": "content_block_start", "index": item,
                         "content_block": {**start, "input": {}}},
                        {"type": "content_block_delta", "index": item,
                         "delta": {"type": "input_json_delta", "partial_json": restored}}]
            out.append({"type": "content_block_stop", "index": item})
        delta = self._delta
        if finish == "tool_use" and all(c.call_id in removed for c in calls):
            delta = {**delta, "delta": {**delta.get("delta", {}), "stop_reason": "end_turn"}}
        self._audit_calls += [{"name": c.name, "arguments": c.raw_arguments} for c in calls]
        self._waiting, self._tools = [], {}
        return [*out, delta]

    def finish(self) -> list[dict[str, Any]]:
        """End of the upstream stream; one cut short (no `message_stop`) is a 502, so a
        truncated answer is never passed off as whole."""
        if not self._stopped:
            raise ProtocolError(502, "the upstream stream ended before message_stop "
                                "(truncated)", error_type="upstream_error")
        return []

    def audit_content(self) -> list[dict[str, Any]]:
        """What the model produced, masked (as it came from upstream)."""
        calls = self._audit_calls + [{"name": str(b.get("name", "")), "arguments": "".join(p)}
                                     for b, p in self._tools.values()]
        text = "".join("".join(g.upstream) for _, g in sorted(self._texts.items()))
        thoughts = [("thinking", "".join(g.upstream)) for _, g in sorted(self._thoughts.items())]
        return [{"index": 0, "content": text, "tool_calls": calls,
                 "finish_reason": self.stop_reason,
                 **audit_items([*thoughts, *self._audit_items])}]


def _is_json(event: dict[str, Any]) -> bool:
    delta = event.get("delta")
    return isinstance(delta, dict) and delta.get("type") == "input_json_delta"
