"""OpenAI Responses API: wire JSON to `Action`s, and decisions back onto the wire.

`instructions`, input messages, `function_call` items (arguments) and
`function_call_output` items (tool results) become segments with the same trust labels as
Chat Completions, so every rule applies unchanged; every other item type, in a request's
`input` and in an answer's `output`, is read as `responses_items` says (a type lictor does
not know is read whole, as third-party text). Tools the agent runs (`function`, `custom`,
`local_shell`, `shell`, `apply_patch`) are offered by name and their calls authorized; any
other type (`mcp`, `web_search_preview`, `code_interpreter`, unknown ones) runs at the
provider: each is a hosted tool offer, authorized like a function. Unknown top-level fields
pass through untouched.
"""

from __future__ import annotations

import hashlib
from typing import Any

from lictor.adapters.content_walk import audit_items, restore_strings, string_segments
from lictor.adapters.errors import ProtocolError
from lictor.adapters.hosted_tools import hosted_refusal, removed_places, url_host
from lictor.adapters.openai_chat import (
    ROLE_TRUST,
    refusal_notes,
    start_request,
    with_masked_texts,
)
from lictor.adapters.responses_items import (
    CALL_ITEMS,
    CLIENT_TOOLS,
    client_call,
    client_tool_name,
    item_segments,
    part_segments,
)
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Decision,
    Direction,
    HostedTool,
    Segment,
    ToolDefinition,
    Trust,
)

PROTOCOL = "openai.responses"
TEXT_PARTS = ("input_text", "output_text", "text")


def _bad(message: str, param: str) -> ProtocolError:
    return ProtocolError(400, message, param=param, code="invalid_request")


def parse_request(body: Any) -> Action:
    """Validate a Responses request and list every text it carries, with trust."""
    action = start_request(body, PROTOCOL)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        action.segments.append(Segment(instructions, Trust.SYSTEM, ("instructions",)))
    elif isinstance(instructions, list):  # as input items: every string read, as the system's
        string_segments(instructions, Trust.SYSTEM, ("instructions",), action.segments)
    elif instructions is not None:
        raise _bad("`instructions` must be a string or an array of input items", "instructions")
    items = body.get("input")
    if isinstance(items, str):
        action.segments.append(Segment(items, Trust.USER, ("input",)))
    elif isinstance(items, list) and items:
        for i, item in enumerate(items):
            _parse_item(item, i, action.segments)
    else:
        raise _bad("`input` must be a string or a non-empty array of items", "input")
    prompt = body.get("prompt")
    if isinstance(prompt, dict) and prompt.get("variables") is not None:
        # a stored prompt's variables are text the model reads, as the caller's input
        string_segments(prompt["variables"], Trust.USER, ("prompt", "variables"),
                        action.segments)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("`tools` must be an array", "tools")
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                raise _bad("each tool needs a string `type`", f"tools[{k}].type")
            if tool["type"] not in CLIENT_TOOLS:  # run by the provider, out of lictor's sight
                action.hosted_tools.append(hosted_tool(tool, ("tools", k)))
                continue
            name = client_tool_name(tool)
            if name is None:
                raise _bad(f"each {tool['type']} tool needs a `name`", f"tools[{k}].name")
            action.offered_tools.append(name)
            action.tool_definitions[name] = ToolDefinition(
                str(tool.get("description") or ""),
                tool.get("parameters") or tool.get("format") or {})
    return action


def hosted_tool(tool: dict[str, Any], where: tuple[str, int]) -> HostedTool:
    """A provider-run tool; a remote MCP server's host comes from its `server_url`."""
    url = tool.get("server_url") if tool["type"] == "mcp" else None
    return HostedTool(tool["type"], where, url_host(url) if isinstance(url, str) else "")


def _parse_item(item: Any, i: int, out: list[Segment]) -> None:
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise _bad("each input item must be an object", where)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        trust = ROLE_TRUST.get(role) if isinstance(role, str) else None
        if trust is None:
            raise _bad("`role` must be user, assistant, system or developer", f"{where}.role")
        content = item.get("content")
        if isinstance(content, str):
            out.append(Segment(content, trust, ("input", i, "content")))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _bad("each content part needs a `type`", f"{where}.content[{j}]")
                if part["type"] in TEXT_PARTS:
                    if not isinstance(part.get("text"), str):
                        raise _bad("a text part needs a string `text`",
                                   f"{where}.content[{j}].text")
                    out.append(Segment(part["text"], trust, ("input", i, "content", j, "text")))
                else:
                    part_segments(part, trust, ("input", i, "content", j), out)
        else:
            raise _bad("`content` must be a string or an array of parts", f"{where}.content")
    elif kind == "function_call":
        if not isinstance(item.get("arguments"), str):
            raise _bad("a function_call needs string `arguments`", f"{where}.arguments")
        out.append(Segment(item["arguments"], Trust.ASSISTANT, ("input", i, "arguments"),
                           tool=str(item.get("name") or "?")))
    elif kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, str):
            out.append(Segment(output, Trust.TOOL, ("input", i, "output")))
        elif isinstance(output, list):
            for j, part in enumerate(output):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append(Segment(part["text"], Trust.TOOL, ("input", i, "output", j, "text")))
        else:
            raise _bad("a function_call_output needs `output`", f"{where}.output")
    elif isinstance(kind, str):
        item_segments(item, ("input", i), out)
    else:
        raise _bad("an item's `type` must be a string", f"{where}.type")


def apply_request(
    body: dict[str, Any], action: Action, masked_texts: list[str], decision: Decision
) -> dict[str, Any]:
    """The request as it goes upstream: masked texts, forbidden tools taken out."""
    doc = with_masked_texts(body, action, masked_texts)
    if decision.removed_offered_tools or decision.removed_hosted_tools:
        removed = set(decision.removed_offered_tools)
        dropped = removed_places(action, decision, "tools")
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and any(
                choice.get("type") == body["tools"][k]["type"] for k in dropped):
            raise hosted_refusal(action, decision)  # without it the request is malformed
        kept = [t for k, t in enumerate(body["tools"]) if k not in dropped
                and client_tool_name(t) not in removed]
        if kept:
            doc.root["tools"] = kept
        else:
            for key in ("tools", "tool_choice", "parallel_tool_calls"):
                doc.root.pop(key, None)
    return doc.root


def _output(resp: Any) -> list[dict[str, Any]]:
    output = resp.get("output") if isinstance(resp, dict) else None
    if not isinstance(output, list) or not all(
            isinstance(o, dict) and isinstance(o.get("type", ""), str) for o in output):
        raise ProtocolError(502, "the upstream model returned an invalid response",
                            error_type="upstream_error")
    return output


def parse_response(resp: Any) -> Action:
    """The model's answer as an action: its texts, and the calls it proposes the agent run."""
    action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, PROTOCOL)
    for oi, item in enumerate(_output(resp)):
        if item.get("type") == "message":
            for j, part in enumerate(item.get("content") or []):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    action.segments.append(Segment(part["text"], Trust.ASSISTANT,
                                                   ("output", oi, "content", j)))
                    # a web search's or file search's citations: page titles, file names
                    string_segments(part.get("annotations"), Trust.TOOL,
                                    ("output", oi, "content", j, "annotations"),
                                    action.segments)
                elif isinstance(part, dict) and isinstance(part.get("type"), str):
                    part_segments(part, Trust.ASSISTANT, ("output", oi, "content", j),
                                  action.segments)
        elif item.get("type") in CALL_ITEMS:  # the agent would run it: authorized first
            action.tool_calls.append(client_call(item))
        else:  # a provider-run tool's call and result, reasoning, or a newer item type
            item_segments(item, ("output", oi), action.segments)
    return action


def produced(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """What the model produced (text, calls the agent runs, and every other item's texts
    as `items`), in the audit's per-choice form."""
    output = _output(resp)
    items = audit_items((audit_kind(output, s.path), s.text)
                        for s in parse_response(resp).segments)
    text = "".join(p["text"] for o in output if o.get("type") == "message"
                   for p in o.get("content") or []
                   if isinstance(p, dict) and isinstance(p.get("text"), str))
    calls = [{"name": c.name, "arguments": c.raw_arguments}
             for c in (client_call(o) for o in output if o.get("type") in CALL_ITEMS)]
    return [{"index": 0, "content": text or None, "tool_calls": calls,
             "finish_reason": resp.get("status"), **items}]


def audit_kind(output: list[dict[str, Any]], path: tuple[str | int, ...]) -> str | None:
    """The audited item a segment at `path` of an answer belongs to: a message's citations
    or refusal, or another item's type; None for a message's text (the audit's content)."""
    item = output[int(path[1])]
    if item.get("type") != "message":
        return str(item.get("type"))
    if len(path) == 4:
        return None
    return ("annotations" if path[4] == "annotations"
            else str(item["content"][int(path[3])]["type"]))


def note_item(notes: list[str], seed: str) -> dict[str, Any]:
    """An assistant message item telling the agent which calls lictor withheld and why."""
    return {
        "id": "msg_lictor_" + hashlib.sha256(seed.encode()).hexdigest()[:24],
        "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": "\n".join(notes), "annotations": []}],
    }


def restore_item(item: dict[str, Any], vault: PlaceholderVault) -> dict[str, Any]:
    """An output item with its placeholders put back in every string the agent reads
    (message text, call arguments, a provider-run tool's output)."""
    restored: dict[str, Any] = restore_strings(item, vault)
    return restored


def apply_response(
    resp: dict[str, Any], decision: Decision, vault: PlaceholderVault
) -> dict[str, Any]:
    """The answer the agent sees: placeholders restored, each forbidden function call
    replaced by a message item saying why."""
    removed = set(decision.removed_tool_calls)
    out: list[dict[str, Any]] = []
    for item in _output(resp):
        if item.get("type") in CALL_ITEMS:
            call = client_call(item)
            if call.call_id in removed:
                out.append(note_item(refusal_notes(decision, [call]), call.call_id))
                continue
        out.append(restore_item(item, vault))
    return {**resp, "output": out}
