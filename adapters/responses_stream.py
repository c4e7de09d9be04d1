"""Streamed Responses API, governed event by event without buffering the answer.

Text deltas flow through restored and checked on a sliding window; `.done` events and
the final `response.completed` carry restored text too. From the first call item the agent
would run (`function_call`, `custom_tool_call`, shell and patch calls) on, events wait for
the final event; then the calls are authorized together and released, or each replaced by
a message item (same output index) saying why. Any other item (a provider-run tool's call
and result, reasoning, a newer item type) is held from its `output_item.added` to its
`output_item.done` and judged whole, as `parse_response` reads it. Sequence numbers are
renumbered in the order events reach the agent.
"""

from __future__ import annotations

from typing import Any

from lictor.adapters.content_walk import audit_items, restore_strings, string_segments
from lictor.adapters.errors import ProtocolError, openai_error_body
from lictor.adapters.openai_chat import refusal_notes
from lictor.adapters.openai_responses import apply_response, note_item, restore_item
from lictor.adapters.responses_items import (
    CALL_ITEMS,
    client_call,
    item_segments,
    part_segments,
)
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
from lictor.enforcement.types import Decision, Segment, ToolCall, Trust, Verdict

FINAL = ("response.completed", "response.incomplete", "response.failed")
_OPENING = ("response.created", "response.in_progress", "response.queued")
# a message's streamed texts: event type -> its string field (deltas checked on a sliding
# window and restored as they flow; done events restored whole)
_STREAMED = {"response.output_text.delta": "delta", "response.output_text.done": "text",
             "response.refusal.delta": "delta", "response.refusal.done": "refusal"}
# streamed as they come (text) or held until authorized (calls); other items held whole
_PIECEMEAL = frozenset({"message", *CALL_ITEMS})
# the deltas of a held call's text: a function's arguments, a custom tool's input
_CALL_DELTAS = ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")


def error_frame(err: ProtocolError) -> bytes:
    """The Responses `error` event; its `error` object makes the `openai` SDK raise it as
    an APIError carrying the message (a bare error event would be yielded, not raised)."""
    return frame({"type": "error", "code": err.code, "message": err.message, "param": err.param,
                  **openai_error_body(err)})


def _note_events(oi: int, notes: list[str], seed: str) -> list[dict[str, Any]]:
    item = note_item(notes, seed)
    text = item["content"][0]["text"]
    part = {"type": "output_text", "text": "", "annotations": []}
    at = {"item_id": item["id"], "output_index": oi, "content_index": 0}
    return [
        {"type": "response.output_item.added", "output_index": oi,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at, "part": part},
        {"type": "response.output_text.delta", **at, "delta": text},
        {"type": "response.output_text.done", **at, "text": text},
        {"type": "response.content_part.done", **at, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": oi, "item": item},
    ]


class ResponsesStream(HeldToolCalls):
    """Feed upstream events in; get the events to send to the agent out."""

    def __init__(self, vault: PlaceholderVault, check_text: CheckText,
                 authorize: AuthorizeCalls) -> None:
        super().__init__(authorize)
        self._vault = vault
        self._check = check_text
        self._texts: dict[tuple[int, int, str], TextGate] = {}  # see `_gate`
        self._calls: dict[int, dict[str, Any]] = {}  # output index -> a call item (CALL_ITEMS)
        # output index -> the held events of an item judged whole when done (a provider-run
        # tool's call and result, reasoning, a newer item type)
        self._items: dict[int, list[dict[str, Any]]] = {}
        self._args: dict[int, list[str]] = {}
        self._waiting: list[dict[str, Any] | int] = []
        self._final: dict[str, Any] = {}
        self._seq = 0
        self.usage: Any = None
        self.status: str | None = None
        self._audit: list[dict[str, str]] = []  # the decided calls, masked, for the audit
        self._audit_items: list[tuple[str | None, str]] = []  # other texts: see audit_items
        # output index -> the item as judged (done, or authorized): the final response's
        # output is made of these, so its copies cannot differ from what was judged
        self._seen: dict[int, dict[str, Any]] = {}
        self._judged: set[str] = set()  # texts read whole and judged already

    def _out(self, events: list[dict[str, Any]], wait: bool = True) -> list[dict[str, Any]]:
        if wait and self._calls:
            self._waiting.extend(events)
            return []
        for event in events:
            event["sequence_number"] = self._seq
            self._seq += 1
        return events

    def _gate(self, event: dict[str, Any]) -> TextGate:
        """The gate of the text or refusal part an event streams."""
        return self._gate_at((int(event.get("output_index", 0)),
                              int(event.get("content_index", 0)),
                              "refusal" if ".refusal." in str(event.get("type")) else ""))

    def _gate_at(self, key: tuple[int, int, str]) -> TextGate:
        """The gate of one part: by output index, content index and kind ("refusal", or ""
        for text)."""
        gate = self._texts.get(key)
        if gate is None:
            gate = self._texts[key] = TextGate.of(self._vault)
        return gate

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Process one upstream event; return what may be released now."""
        if self.blocked is not None:
            return []
        event = dict(checked_event(event, ("output_index", "content_index"),
                                   ("item", "response", "part", "annotation")))
        kind = event.get("type")
        oi = event.get("output_index")
        item: dict[str, Any] = event["item"] if isinstance(event.get("item"), dict) else {}
        if not isinstance(item.get("type", ""), str):
            raise malformed("an item's `type` must be a string")
        opening = event.get("response") if kind in _OPENING else None
        if isinstance(opening, dict) and opening.get("output"):
            # the SDK's snapshot starts from it: output items come as their own events only
            raise malformed(f"its {kind} event carries output items (they must come as "
                            "output_item events)")
        if kind == "response.output_item.added" and item.get("type") in CALL_ITEMS:
            self._calls[int(oi or 0)] = item
            self._args[int(oi or 0)] = []
            self._waiting.append(int(oi or 0))
            return []
        if kind == "response.output_item.added" and item.get("type") not in _PIECEMEAL:
            self._items[int(oi or 0)] = [event]
            return []
        if isinstance(oi, int) and oi in self._items:
            if kind == "response.output_item.done" and item:
                return self._judge_item(oi, event)
            self._items[oi].append(event)
            return []
        if isinstance(oi, int) and oi in self._calls:  # a held call's own events
            if kind in _CALL_DELTAS:
                self._args[oi].append(str(event.get("delta") or ""))
            elif kind == "response.output_item.done" and item.get("type") in CALL_ITEMS:
                self._calls[oi] = item
            return []
        field = _STREAMED.get(str(kind))
        if field is not None and isinstance(event.get(field), str):
            return self._streamed(event, field)
        if kind == "response.output_text.annotation.added":  # a citation: judged whole
            segments: list[Segment] = []
            string_segments(event.get("annotation"), Trust.TOOL, ("annotation",), segments)
            self._judge_whole(segments, "annotations")
            if self.blocked is not None:
                return []
            event = restore_strings(event, self._vault)
        elif kind == "response.content_part.done" and isinstance(event.get("part"), dict):
            part = self._part_as_streamed(int(oi or 0), int(event.get("content_index") or 0),
                                          event["part"])
            event["part"] = restore_strings(part, self._vault)
        elif kind == "response.output_item.done" and item:
            if item.get("type") == "message":
                item = self._seen[int(oi or 0)] = self._message_as_streamed(int(oi or 0), item)
            event["item"] = restore_item(item, self._vault)
        elif kind in FINAL:
            response: dict[str, Any] = (event["response"] if isinstance(event.get("response"), dict)
                                        else {})
            self._judge_unstreamed(response.get("output"))
            if self.blocked is not None:
                return []
            self.usage, self.status = response.get("usage"), response.get("status")
            self._final = event
            if self._calls:
                return self.decide(self._tool_calls(), self.status)
            return self._out([self._finish_final(Decision(Verdict.ALLOW))])
        return self._out([event])

    def _streamed(self, event: dict[str, Any], field: str) -> list[dict[str, Any]]:
        """A message's text or refusal: a delta checked and restored as it flows; at done,
        what the restorer still held back, then the whole text restored."""
        text = event[field]
        if field == "delta":
            findings, text = self._gate(event).feed(text, self._check)
            self.note(findings)
            if self.blocked is not None or not text:
                return []
            return self._out([{**event, "delta": text}])
        gate = self._gate(event)
        rest = gate.flush()
        streamed = "".join(gate.upstream)  # what was judged, whatever the done event says
        if field == "refusal":
            self._audit_items.append(("refusal", streamed))
        at = {k: event.get(k) for k in ("item_id", "output_index", "content_index")}
        delta = str(event["type"]).replace(".done", ".delta")
        extra = [{"type": delta, **at, "delta": rest}] if rest else []
        return self._out([*extra, {**event, field: self._vault.restore(streamed)}])

    def _judge_whole(self, segments: list[Segment], kind: str) -> None:
        """Texts read whole (a citation, a provider-run tool's result), each judged once."""
        fresh = [s for s in segments if s.text not in self._judged]
        if fresh:
            self.note(self._authorize([], fresh).findings)
            self._judged.update(s.text for s in fresh)
            self._audit_items.extend((kind, s.text) for s in fresh)

    def _part_as_streamed(self, index: int, j: int, part: dict[str, Any]) -> dict[str, Any]:
        """A message part as a done event or the final response shows it whole: its text
        (or refusal) is what was streamed and judged (one never streamed is judged now),
        and citations not judged yet are judged: an upstream cannot stream one text and
        hand the agent another in the whole."""
        field = "refusal" if part.get("type") == "refusal" else "text"
        if isinstance(part.get(field), str):
            key = (index, j, "refusal" if field == "refusal" else "")
            streamed = key in self._texts
            gate = self._gate_at(key)
            if not streamed:
                self.note(gate.feed(part[field], self._check)[0])
                gate.flush()
            part = {**part, field: "".join(gate.upstream)}
        segments: list[Segment] = []
        if field == "text":
            string_segments(part.get("annotations"), Trust.TOOL, ("annotations",), segments)
        elif part.get("type") not in ("refusal", "output_text"):  # a newer part type
            part_segments(part, Trust.TOOL, (), segments)
        self._judge_whole(segments, "annotations" if field == "text" else str(part.get("type")))
        return part

    def _message_as_streamed(self, index: int, item: dict[str, Any]) -> dict[str, Any]:
        content = item.get("content")
        if not isinstance(content, list):
            return item
        return {**item, "content": [self._part_as_streamed(index, j, p) if isinstance(p, dict)
                                    else p for j, p in enumerate(content)]}

    def _judge_unstreamed(self, output: Any) -> None:
        """Items of the final response never streamed whole: a held item never done is
        judged as the final response has it; a call joins the calls to authorize; a message
        is judged whole; anything else is judged whole (see `_seen`)."""
        output = output if isinstance(output, list) else []
        if not all(isinstance(i, dict) and isinstance(i.get("type", ""), str) for i in output):
            raise malformed("the final response's `output` must hold items with a string "
                            "`type`")
        for index in list(self._items):
            whole = output[index] if index < len(output) else None
            self._judge_item(index, None, whole if isinstance(whole, dict) else {})
        for index, item in enumerate(output):
            if index in self._seen or index in self._calls:
                continue
            if item.get("type") in CALL_ITEMS:
                self._calls[index], self._args[index] = item, []
            elif item.get("type") == "message":
                self._seen[index] = self._message_as_streamed(index, item)
            else:
                self._judge_item(index, None, item)

    def _judge_item(self, index: int, done: dict[str, Any] | None,
                    item: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Judge a held item whole (its texts, as `parse_response` reads them); release its
        events with placeholders restored, or nothing once a finding stops the stream."""
        held = self._items.pop(index, [])
        whole: dict[str, Any] = item if item is not None else (done or {}).get("item") or {}
        self._seen[index] = whole
        segments: list[Segment] = []
        item_segments(whole, ("output", index), segments)
        if segments:
            self.note(self._authorize([], segments).findings)
            self._audit_items.extend((str(whole.get("type")), s.text) for s in segments)
        if self.blocked is not None or done is None:
            return []
        return self._out([restore_strings(e, self._vault) for e in [*held, done]])

    def _finish_final(self, decision: Decision) -> dict[str, Any]:
        """The final event, its output made of the items as they were judged (see `_seen`)."""
        response = self._final.get("response")
        if isinstance(response, dict) and isinstance(response.get("output"), list):
            output = [self._seen.get(i, item) for i, item in enumerate(response["output"])]
            return {**self._final, "response": apply_response({**response, "output": output},
                                                              decision, self._vault)}
        return self._final

    def _tool_calls(self) -> list[ToolCall]:
        out = []
        for oi, item in self._calls.items():
            field = CALL_ITEMS[item["type"]]
            value = item.get(field)
            if not (isinstance(value, str) and value) and self._args[oi]:
                value = "".join(self._args[oi])  # the item's own field came empty: the deltas
            out.append(client_call(item, value))
        return out

    def release(self, index: int, calls: list[ToolCall], decision: Decision,
                finish: str | None) -> list[dict[str, Any]]:
        """The held events, each call released or replaced by a note, then the final event."""
        removed = self.settle(decision)
        if removed is None:
            return []
        by_index = dict(zip(self._calls, calls, strict=True))
        for place, call in by_index.items():  # as authorized, for the final response too
            held = self._calls[place]
            self._seen[place] = {**held, CALL_ITEMS[held["type"]]: _payload(call, held)}
        self.removed_tool_calls.extend(c.call_id for c in calls if c.call_id in removed)
        out: list[dict[str, Any]] = []
        for entry in self._waiting:
            if not isinstance(entry, int):
                out.append(entry)
                continue
            call, item = by_index[entry], self._calls[entry]
            if call.call_id in removed:
                out += _note_events(entry, refusal_notes(decision, [call]), call.call_id)
                continue
            if item["type"] != "function_call":  # no deltas: the item whole, restored
                done = restore_item({**item, CALL_ITEMS[item["type"]]: _payload(call, item)},
                                    self._vault)
                out += [{"type": "response.output_item.added", "output_index": entry,
                         "item": {**done, "status": "in_progress"}},
                        {"type": "response.output_item.done", "output_index": entry,
                         "item": {**done, "status": "completed"}}]
                continue
            args = self._vault.restore(call.raw_arguments)
            at = {"item_id": item.get("id"), "output_index": entry}
            out += [
                {"type": "response.output_item.added", "output_index": entry,
                 "item": {**item, "arguments": "", "status": "in_progress"}},
                {"type": "response.function_call_arguments.delta", **at, "delta": args},
                {"type": "response.function_call_arguments.done", **at, "arguments": args},
                {"type": "response.output_item.done", "output_index": entry,
                 "item": {**item, "arguments": args, "status": "completed"}},
            ]
        self._audit = [{"name": c.name, "arguments": c.raw_arguments} for c in calls]
        self._waiting, self._calls = [], {}
        return self._out([*out, self._finish_final(decision)], wait=False)

    def finish(self) -> list[dict[str, Any]]:
        """End of the upstream stream; one cut short (no final `response.*` event) is a 502,
        so a truncated answer is never passed off as whole."""
        if not self._final:
            raise ProtocolError(502, "the upstream stream ended before its final response "
                                "event (truncated)", error_type="upstream_error")
        return []

    def audit_content(self) -> list[dict[str, Any]]:
        """What the model produced, masked (as it came from upstream)."""
        calls = self._audit or [
            {"name": c.name, "arguments": c.raw_arguments} for c in self._tool_calls()]
        text = "".join("".join(g.upstream) for key, g in sorted(self._texts.items())
                       if not key[2])
        return [{"index": 0, "content": text, "tool_calls": calls,
                 "finish_reason": self.status, **audit_items(self._audit_items)}]


def _payload(call: ToolCall, item: dict[str, Any]) -> Any:
    """What a held non-function call runs, in its item's own shape (text or object)."""
    value = item.get(CALL_ITEMS[item["type"]])
    return call.raw_arguments if isinstance(value, str) or value is None else value
