"""Streamed chat completions: governed chunk by chunk without buffering the answer.

Text flows through as it arrives, placeholders restored (also when split across chunks)
and output rules checked on a sliding window before release. Tool calls are held until
complete, authorized, and only then emitted, so a forbidden call never reaches the agent;
calls that need approval wait in `held` until the gateway has asked people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lictor.adapters import chat_answer_fields as answer_fields
from lictor.adapters.content_walk import audit_items
from lictor.adapters.openai_chat import LEGACY_CALL, refusal_notes, tool_call_from_wire
from lictor.adapters.stream_text import (
    AuthorizeCalls,
    CheckText,
    Findings,
    HeldCalls,
    TextGate,
    check_index,
    malformed,
)
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Decision, Segment, ToolCall, Trust


@dataclass(slots=True)
class _PendingCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Choice:
    # the model's texts (content, refusal, ...) by their place in a delta
    texts: dict[tuple[str, ...], TextGate] = field(default_factory=dict)
    others: list[Segment] = field(default_factory=list)  # other texts, judged per chunk
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    finished: bool = False
    finish_reason: str | None = None


def _checked_choices(chunk: Any) -> list[dict[str, Any]]:
    """The chunk's choices, after checking every field the stream reads has its wire type."""
    if not isinstance(chunk, dict):
        raise malformed("it is not a JSON object")
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise malformed("`choices` must be an array")
    for raw in choices:
        if not isinstance(raw, dict):
            raise malformed("each choice must be an object")
        check_index(raw.get("index", 0), "a choice's `index`")
        delta = raw.get("delta") or {}
        reason = raw.get("finish_reason")
        if not isinstance(delta, dict) or not isinstance(delta.get("content") or "", str):
            raise malformed("`delta` must be an object with string `content`")
        if reason is not None and not isinstance(reason, str):
            raise malformed("`finish_reason` must be a string")
        if delta.get("function_call") is not None:
            raise malformed(LEGACY_CALL)
        calls = delta.get("tool_calls") or []
        if not isinstance(calls, list):
            raise malformed("`delta.tool_calls` must be an array")
        for call in calls:
            fn = call.get("function") or {} if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                raise malformed("each tool call must be an object with a `function` object")
            check_index(call.get("index", 0), "a tool call's `index`")
            if not all(isinstance(fn.get(k) or "", str) for k in ("name", "arguments")):
                raise malformed("a tool call's `function.name` and `arguments` must be strings")
    return choices


class ChatStream(Findings):
    """Feed upstream chunks in; get the chunks to send to the agent out."""

    def __init__(
        self, vault: PlaceholderVault, check_text: CheckText, authorize: AuthorizeCalls
    ) -> None:
        super().__init__()
        self._vault = vault
        self._check_text = check_text
        self._authorize = authorize
        self._choices: dict[int, _Choice] = {}
        self._base: dict[str, Any] = {}
        self.removed_tool_calls: list[str] = []
        self.held: list[HeldCalls] = []  # calls that need approval, to settle, then release
        self.usage: Any = None  # the last usage the upstream reported

    def _choice(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        return state

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {**self._base, "choices": choices}

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Process one upstream chunk; return what may be released now.

        A chunk that is not shaped like a chat completion chunk raises a 502 `ProtocolError`:
        the stream ends with an error event, never with half-checked text."""
        if self.blocked is not None:
            return []
        choices = _checked_choices(chunk)
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        if not self._base:
            self._base = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        out_choices: list[dict[str, Any]] = []
        finals: list[dict[str, Any]] = []
        for raw in choices:
            index = raw.get("index", 0)
            state = self._choice(index)
            delta = self._judged_delta(index, state, dict(raw.get("delta") or {}))
            if self.blocked is not None:
                return []
            for wire_call in delta.pop("tool_calls", None) or []:
                self._collect_call(state, wire_call)
            reason = raw.get("finish_reason")
            if any(value not in ("", None) for value in delta.values()):
                out_choices.append({**raw, "delta": delta, "finish_reason": None})
            if reason is not None:
                state.finish_reason = reason
                finals.extend(self._finish_choice(index, state))
        out = [self._chunk(out_choices)] if out_choices else []
        if self.blocked is not None:
            return out
        out.extend(finals)
        if chunk.get("usage") is not None:
            out.append({**self._chunk([]), "usage": chunk["usage"]})
        return out

    def _judged_delta(self, index: int, state: _Choice,
                      delta: dict[str, Any]) -> dict[str, Any]:
        """A delta with its texts judged (the model's on a sliding window, anything else
        whole) and placeholders restored; nothing is released once a finding stops it."""
        for place, text in answer_fields.model_texts(delta):
            gate = state.texts.get(place)
            if gate is None:
                gate = state.texts[place] = TextGate.of(self._vault)
            findings, restored = gate.feed(text, self._check_text)
            self.note(findings)
            delta = answer_fields.with_text(delta, place, restored)
        others: list[Segment] = []
        answer_fields.other_segments(delta, ("choices", index), others)
        if others:  # a search model's citations, a field newer than lictor: whole
            self.note(self._authorize([], others).findings)
            state.others.extend(others)
            delta = answer_fields.restored_others(delta, self._vault)
        return delta

    @staticmethod
    def _collect_call(state: _Choice, wire_call: dict[str, Any]) -> None:
        pending = state.calls.setdefault(wire_call.get("index", 0), _PendingCall())
        if wire_call.get("id"):
            pending.call_id = str(wire_call["id"])
        fn = wire_call.get("function") or {}
        if fn.get("name"):
            pending.name += str(fn["name"])
        if fn.get("arguments"):
            pending.arguments.append(str(fn["arguments"]))
        if wire_call.get("type"):
            pending.extra["type"] = wire_call["type"]

    def _finish_choice(self, index: int, state: _Choice) -> list[dict[str, Any]]:
        state.finished = True
        out: list[dict[str, Any]] = []
        for place, gate in state.texts.items():  # what each restorer still holds back
            rest = gate.flush()
            if rest:
                delta = answer_fields.with_text(_nested(place), place, rest)
                out.append(self._chunk([{"index": index, "delta": delta}]))
        calls = [
            tool_call_from_wire(
                {"id": p.call_id, "function": {"name": p.name, "arguments": "".join(p.arguments)}},
                f"#{index}.{k}",
            )
            for k, p in sorted(state.calls.items())
        ]
        finish = state.finish_reason
        if not calls:
            out.append(self._chunk([{"index": index, "delta": {}, "finish_reason": finish}]))
            return out
        decision = self._authorize(calls)
        if decision.approvals:  # the data plane asks people, maybe waits, then releases
            self.held.append(HeldCalls(index, calls, decision, finish))
            return out
        return out + self.release(index, calls, decision, finish)

    def release(self, index: int, calls: list[ToolCall], decision: Decision,
                finish: str | None) -> list[dict[str, Any]]:
        """The end of one choice: its authorized tool calls, notes for removed ones, and its
        finish reason."""
        out: list[dict[str, Any]] = []
        if calls:
            self.note(decision.findings)
            if self.blocked is not None:
                return []
            removed = set(decision.removed_tool_calls)
            self.removed_tool_calls.extend(c.call_id for c in calls if c.call_id in removed)
            kept = [c for c in calls if c.call_id not in removed]
            notes = refusal_notes(decision, calls)
            if notes:
                out.append(self._chunk([{"index": index, "delta": {"content": "\n".join(notes)}}]))
            if kept:
                restore = self._vault.restore
                wire = [
                    {
                        "index": k,
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": restore(c.raw_arguments)},
                    }
                    for k, c in enumerate(kept)
                ]
                out.append(self._chunk([{"index": index, "delta": {"tool_calls": wire}}]))
            elif finish == "tool_calls":
                finish = "stop"
        out.append(self._chunk([{"index": index, "delta": {}, "finish_reason": finish}]))
        return out

    def finish(self) -> list[dict[str, Any]]:
        """End of the upstream stream: close any choice that never sent a finish_reason."""
        out: list[dict[str, Any]] = []
        for index, state in sorted(self._choices.items()):
            if not state.finished and self.blocked is None:
                state.finish_reason = state.finish_reason or "stop"
                out.extend(self._finish_choice(index, state))
        return out if self.blocked is None else []

    def audit_content(self) -> list[dict[str, Any]]:
        """What the model produced, masked (as it came from upstream), per choice."""
        out = []
        for index, state in sorted(self._choices.items()):
            content = state.texts.get(("content",))
            texts = [Segment("".join(gate.upstream), Trust.ASSISTANT, ("choices", index, *place))
                     for place, gate in state.texts.items() if place != ("content",)]
            out.append({
                "index": index,
                "content": "".join(content.upstream) if content is not None else "",
                "tool_calls": [
                    {"name": p.name, "arguments": "".join(p.arguments)}
                    for _, p in sorted(state.calls.items())
                ],
                "finish_reason": state.finish_reason,
                **audit_items((answer_fields.audit_kind(s), s.text)
                              for s in [*texts, *state.others]),
            })
        return out


def _nested(place: tuple[str, ...]) -> dict[str, Any]:
    """An empty delta with the containers `place` needs (`audio` for its transcript)."""
    return {place[0]: _nested(place[1:])} if len(place) > 1 else {}
