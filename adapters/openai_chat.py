"""OpenAI Chat Completions: wire JSON to `Action`s, and decisions back onto the wire.

Parsing validates the shape it relies on and names the offending field; fields it does
not know are passed through untouched. Applying copies only the containers it changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lictor.adapters import chat_answer_fields as answer_fields
from lictor.adapters.content_walk import audit_items, string_segments
from lictor.adapters.errors import ProtocolError
from lictor.adapters.hosted_tools import WEB_SEARCH, hosted_refusal
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Decision,
    Direction,
    HostedTool,
    Segment,
    ToolCall,
    ToolDefinition,
    Trust,
)

PROTOCOL = "openai.chat"

ROLE_TRUST = {
    "system": Trust.SYSTEM,
    "developer": Trust.SYSTEM,
    "user": Trust.USER,
    "assistant": Trust.ASSISTANT,
    "tool": Trust.TOOL,
    "function": Trust.TOOL,
}

Path = tuple[str | int, ...]
# Content parts that are media, not text: not read (see docs/security.md).
MEDIA_PARTS = frozenset({"image_url", "input_audio", "file"})
# The deprecated `functions` API has no tool call ids and its own stream deltas; lictor
# authorizes calls through `tools` only, so it refuses the old form rather than pass it.
LEGACY_FUNCTIONS = (
    "`functions` and `function_call` are the deprecated form of `tools` and `tool_choice`; "
    "lictor authorizes tool calls through `tools` only: send each function as a `tools` "
    'entry of type "function"')
LEGACY_CALL = "the model proposed a legacy `function_call`, which lictor cannot authorize"


def _bad(message: str, param: str) -> ProtocolError:
    return ProtocolError(400, message, param=param, code="invalid_request")


def start_request(body: Any, protocol: str, *, streams: bool = True) -> Action:
    """What every OpenAI API request shares (a JSON object, a non-empty `model`, a boolean
    `stream`), checked; the protocol's adapter fills in the Action it returns."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` must be a non-empty string", "model")
    if streams and not isinstance(body.get("stream", False), bool):
        raise _bad("`stream` must be a boolean", "stream")
    return Action(ActionKind.MODEL_REQUEST, Direction.REQUEST, protocol, model=model)


def parse_request(body: Any) -> Action:
    """Validate a chat completion request and list every text it carries, with trust."""
    action = start_request(body, PROTOCOL)
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise _bad(LEGACY_FUNCTIONS, legacy)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty array", "messages")
    segments, role_trust = action.segments, ROLE_TRUST
    for i, msg in enumerate(messages):
        if msg.__class__ is dict:  # a plain text message, the bulk of a history, inline
            content, role = msg.get("content"), msg.get("role")
            trust = role_trust.get(role) if role.__class__ is str else None
            if (content.__class__ is str and trust is not None and "tool_calls" not in msg
                    and "function_call" not in msg and "refusal" not in msg):
                segments.append(Segment(content, trust, ("messages", i, "content")))
                continue
        _parse_message(msg, i, segments)
    if body.get("web_search_options") is not None:  # the provider searches the web itself
        action.hosted_tools.append(HostedTool(WEB_SEARCH, ("web_search_options", 0)))
    prediction = body.get("prediction")
    if isinstance(prediction, dict) and prediction.get("content") is not None:
        # Predicted Outputs: text the model reads to speed up its answer
        string_segments(prediction["content"], Trust.USER, ("prediction", "content"), segments)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("`tools` must be an array", "tools")
        for k, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(fn, dict) or not isinstance(name, str) or not name:
                raise _bad("each tool needs `function.name`", f"tools[{k}].function.name")
            action.offered_tools.append(name)
            action.tool_definitions[name] = ToolDefinition(
                str(fn.get("description") or ""), fn.get("parameters") or {})
    return action


def _parse_message(msg: Any, i: int, out: list[Segment]) -> None:
    """Any message (`parse_request` takes plain text messages inline, before this)."""
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise _bad("each message must be an object", where)
    role = msg.get("role")
    trust = ROLE_TRUST.get(role) if isinstance(role, str) else None
    if trust is None:
        raise _bad(f"`role` must be one of {', '.join(ROLE_TRUST)}", f"{where}.role")
    content = msg.get("content")
    if isinstance(content, str):
        out.append(Segment(content, trust, ("messages", i, "content")))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _bad("each content part needs a `type`", f"{where}.content[{j}]")
            if part["type"] == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise _bad("a text part needs a string `text`", f"{where}.content[{j}].text")
                out.append(Segment(text, trust, ("messages", i, "content", j, "text")))
            elif part["type"] not in MEDIA_PARTS:  # a refusal, or a newer part type: whole
                string_segments(part, trust, ("messages", i, "content", j), out)
    elif content is not None:
        raise _bad("`content` must be a string, an array of parts, or null", f"{where}.content")
    if isinstance(msg.get("refusal"), str):
        out.append(Segment(msg["refusal"], trust, ("messages", i, "refusal")))
    legacy = msg.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        out.append(Segment(legacy["arguments"], Trust.ASSISTANT,
                           ("messages", i, "function_call", "arguments"),
                           tool=str(legacy.get("name") or "?")))
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _bad("`tool_calls` must be an array", f"{where}.tool_calls")
        for k, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
                raise _bad(
                    "a tool call needs string `function.arguments`",
                    f"{where}.tool_calls[{k}].function.arguments",
                )
            path: Path = ("messages", i, "tool_calls", k, "function", "arguments")
            tool = str(fn.get("name") or "?")
            out.append(Segment(fn["arguments"], Trust.ASSISTANT, path, tool=tool))


class _CopyOnWrite:
    """Sets values deep inside a JSON document, copying each container once on the way."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = dict(root)
        self._copied: set[int] = {id(self.root)}

    def set(self, path: Path, value: Any) -> None:
        cur: Any = self.root
        for key in path[:-1]:
            child = cur[key]
            if id(child) not in self._copied:
                child = child.copy()
                self._copied.add(id(child))
                cur[key] = child
            cur = child
        cur[path[-1]] = value


def with_masked_texts(body: dict[str, Any], action: Action, masked_texts: list[str],
                      encode: Callable[[Segment, str], str] | None = None) -> _CopyOnWrite:
    """`body` with each text masking changed put back at its segment's path (through
    `encode` if given); the agent's original body is never modified."""
    doc = _CopyOnWrite(body)
    for segment, text in zip(action.segments, masked_texts, strict=True):
        if text != segment.text:
            doc.set(segment.path, encode(segment, text) if encode is not None else text)
    return doc


def apply_request(
    body: dict[str, Any], action: Action, masked_texts: list[str], decision: Decision
) -> dict[str, Any]:
    """The request as it goes upstream: masked texts, forbidden tools taken out."""
    if decision.removed_hosted_tools:  # a search model searches whether asked to or not
        raise hosted_refusal(action, decision, "web_search_options")
    doc = with_masked_texts(body, action, masked_texts)
    if decision.removed_offered_tools:
        removed = set(decision.removed_offered_tools)
        kept = [t for t in body["tools"] if t["function"]["name"] not in removed]
        if kept:
            doc.root["tools"] = kept
        else:  # an empty `tools` array is rejected by OpenAI: drop tool fields
            for key in ("tools", "tool_choice", "parallel_tool_calls"):
                doc.root.pop(key, None)
    return doc.root


def tool_call_from_wire(call: dict[str, Any], fallback_id: str) -> ToolCall:
    fn = call.get("function") or {}
    raw = fn.get("arguments") or ""
    try:
        args = json.loads(raw) if raw else {}
    except ValueError:
        args = {}
    return ToolCall(
        name=str(fn.get("name") or ""),
        arguments=args if isinstance(args, dict) else {"value": args},
        call_id=str(call.get("id") or fallback_id),
        raw_arguments=raw,
    )


def _choices(resp: Any) -> list[dict[str, Any]]:
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ProtocolError(
            502, "the upstream model returned an invalid response", error_type="upstream_error"
        )
    return choices


def parse_response(resp: Any) -> Action:
    """The model's answer as an action: its text and the tool calls it proposes."""
    action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, PROTOCOL)
    for ci, choice in enumerate(_choices(resp)):
        message = choice.get("message") or {}
        if not isinstance(message, dict):
            raise ProtocolError(502, "the upstream model returned a choice whose `message` is "
                                "not an object", error_type="upstream_error")
        if message.get("function_call") is not None:
            raise ProtocolError(502, LEGACY_CALL, error_type="upstream_error")
        answer_fields.segments(message, ("choices", ci), action.segments)
        for k, call in enumerate(message.get("tool_calls") or []):
            action.tool_calls.append(tool_call_from_wire(call, f"#{ci}.{k}"))
    return action


def produced(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """Per choice, what the model produced (text, tool calls, and any other texts as
    `items`): the content audit keeps."""
    out = []
    for i, choice in enumerate(_choices(resp)):
        message = choice.get("message") or {}
        content = message.get("content")
        others: list[Segment] = []
        answer_fields.segments(message, ("choices", i), others)
        calls = []
        for call in message.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            fn = fn if isinstance(fn, dict) else {}
            args = fn.get("arguments", "")
            calls.append({
                "name": str(fn.get("name", "")),
                "arguments": args if isinstance(args, str) else json.dumps(args),
            })
        out.append({
            "index": i,
            "content": content if isinstance(content, str) else None,
            "tool_calls": calls,
            "finish_reason": choice.get("finish_reason"),
            **audit_items((answer_fields.audit_kind(s), s.text) for s in others),
        })
    return out



def refusal_notes(decision: Decision, calls: list[ToolCall]) -> list[str]:
    """A readable line per removed tool call, naming the policy that forbids it."""
    reasons = {
        f.evidence: f"forbidden by policy {f.rule_id.removeprefix('cedar:')}"
        for f in decision.findings
        if f.rule_id.startswith("cedar:")
    }
    removed = set(decision.removed_tool_calls)
    return [
        f"[lictor] The tool call `{c.name}` was not passed on: "
        f"{decision.call_notes.get(c.call_id) or reasons.get(c.name, 'forbidden by policy')}."
        for c in calls
        if c.call_id in removed
    ]


def apply_response(
    resp: dict[str, Any], decision: Decision, vault: PlaceholderVault
) -> dict[str, Any]:
    """The answer the agent sees: placeholders restored, forbidden tool calls replaced."""
    removed = set(decision.removed_tool_calls)
    out = dict(resp)
    new_choices = []
    for ci, wire_choice in enumerate(_choices(resp)):
        choice = dict(wire_choice)
        message = answer_fields.restored(choice.get("message") or {}, vault)
        notes: list[str] = []
        calls = message.get("tool_calls")
        if calls:
            parsed = [tool_call_from_wire(c, f"#{ci}.{k}") for k, c in enumerate(calls)]
            notes = refusal_notes(decision, parsed)
            kept = []
            for call, tc in zip(calls, parsed, strict=True):
                if tc.call_id in removed:
                    continue
                fn = dict(call.get("function") or {})
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = vault.restore(fn["arguments"])
                kept.append({**call, "function": fn})
            if kept:
                message["tool_calls"] = kept
            else:
                message.pop("tool_calls", None)
                if choice.get("finish_reason") == "tool_calls":
                    choice["finish_reason"] = "stop"
        content = message.get("content")
        if notes and isinstance(content, list):  # an answer in parts: the notes as one more
            content = [*content, {"type": "text", "text": "\n".join(notes)}]
        elif notes:
            content = "\n".join(([content] if content else []) + notes)
        message["content"] = content
        choice["message"] = message
        new_choices.append(choice)
    out["choices"] = new_choices
    return out
