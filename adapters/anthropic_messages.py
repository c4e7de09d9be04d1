"""Anthropic Messages: wire JSON to `Action`s, and decisions back onto the wire.

The system prompt, text blocks, `tool_use` inputs and `tool_result` contents become
segments with the same trust labels as Chat Completions, so every rule applies unchanged;
every other block (documents, search results, thinking, the calls and results of tools
the provider runs, types newer than lictor) is read by `anthropic_blocks`, in requests and
answers alike; only media and opaque payloads are not. Server tools (a `tools` entry with
a `type`: `web_search_20250305`, ...) and the MCP connector's `mcp_servers` run at the
provider: each is a hosted tool offer, authorized like a tool. Unknown top-level fields
pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

from lictor.adapters.anthropic_blocks import (
    JSON_KEY,
    PROVIDER_CALLS,
    cited,
    read_block,
    restore_json,
    restored,
)
from lictor.adapters.content_walk import audit_items, restore_strings
from lictor.adapters.errors import ProtocolError
from lictor.adapters.hosted_tools import hosted_refusal, removed_places, url_host
from lictor.adapters.openai_chat import refusal_notes, with_masked_texts
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

PROTOCOL = "anthropic.messages"
ROLE_TRUST = {"user": Trust.USER, "assistant": Trust.ASSISTANT}
# Anthropic-defined tools the agent executes (versioned types, e.g. `bash_20250124`).
AGENT_RUN_PREFIXES = ("bash_", "text_editor_", "computer_", "memory_")

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               415: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}


def error_body(err: ProtocolError) -> dict[str, Any]:
    """Anthropic's error envelope, which the `anthropic` SDK raises as its APIStatusError."""
    kind = ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else
                           "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def _bad(message: str, param: str) -> ProtocolError:
    return ProtocolError(400, f"{param}: {message}", param=param, code="invalid_request")


def _text_blocks(content: Any, trust: Trust, path: tuple[str | int, ...], where: str,
                 out: list[Segment]) -> None:
    """A string, or an array of blocks: text ones read inline (the common case, kept
    cheap), any other through `read_block`."""
    if isinstance(content, str):
        out.append(Segment(content, trust, path))
        return
    if not isinstance(content, list):
        raise _bad("must be a string or an array of content blocks", where)
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad("each content block needs a `type`", f"{where}[{j}]")
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                raise _bad("a text block needs a string `text`", f"{where}[{j}].text")
            out.append(Segment(block["text"], trust, (*path, j, "text")))
            if block.get("citations"):
                cited(block, (*path, j), out)
        else:
            read_block(block, trust, (*path, j), out)


def parse_request(body: Any) -> Action:
    """Validate a Messages request and list every text it carries, with trust."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("must be a non-empty string", "model")
    if not isinstance(body.get("stream", False), bool):
        raise _bad("must be a boolean", "stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("must be a non-empty array", "messages")
    action = Action(ActionKind.MODEL_REQUEST, Direction.REQUEST, PROTOCOL, model=model)
    if body.get("system") is not None:
        _text_blocks(body["system"], Trust.SYSTEM, ("system",), "system", action.segments)
    for i, msg in enumerate(messages):
        _parse_message(msg, i, action.segments)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("must be an array", "tools")
        for k, tool in enumerate(tools):
            kind = tool.get("type", "custom") if isinstance(tool, dict) else "custom"
            if not isinstance(kind, str) or not kind:
                raise _bad("a tool's `type` must be a string", f"tools[{k}].type")
            if not agent_runs(kind):  # a server tool or an MCP toolset: run by the provider
                action.hosted_tools.append(HostedTool(kind, ("tools", k)))
                continue
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str) or not name:
                raise _bad("each tool needs a `name`", f"tools[{k}].name")
            action.offered_tools.append(name)
            action.tool_definitions[name] = ToolDefinition(
                str(tool.get("description") or ""), tool.get("input_schema") or {})
    _parse_mcp_servers(body.get("mcp_servers"), action)
    return action


def agent_runs(kind: Any) -> bool:
    """A tool type the agent runs: a custom tool, or one Anthropic defines for the agent's
    side (`bash_*`, `text_editor_*`, `computer_*`, `memory_*`). It is offered by its `name`,
    and the model's `tool_use` of it is authorized like any other."""
    return kind == "custom" or (isinstance(kind, str) and kind.startswith(AGENT_RUN_PREFIXES))


def _parse_mcp_servers(servers: Any, action: Action) -> None:
    """The MCP connector's remote servers, which Anthropic calls itself: `hosted:mcp`."""
    if servers is None:
        return
    if not isinstance(servers, list):
        raise _bad("must be an array", "mcp_servers")
    for k, server in enumerate(servers):
        url = server.get("url") if isinstance(server, dict) else None
        if not isinstance(url, str):
            raise _bad("each MCP server needs a string `url`", f"mcp_servers[{k}].url")
        action.hosted_tools.append(HostedTool("mcp", ("mcp_servers", k), url_host(url)))


def _parse_message(msg: Any, i: int, out: list[Segment]) -> None:
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise _bad("each message must be an object", where)
    role = msg.get("role")
    trust = ROLE_TRUST.get(role) if isinstance(role, str) else None
    if trust is None:
        raise _bad("`role` must be user or assistant", f"{where}.role")
    content = msg.get("content")
    path: tuple[str | int, ...] = ("messages", i, "content")
    if isinstance(content, str):
        out.append(Segment(content, trust, path))
        return
    if not isinstance(content, list):
        raise _bad("must be a string or an array of content blocks", f"{where}.content")
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad("each content block needs a `type`", at)
        kind = block["type"]
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _bad("a text block needs a string `text`", f"{at}.text")
            out.append(Segment(block["text"], trust, (*path, j, "text")))
            if block.get("citations"):
                cited(block, (*path, j), out)
        elif kind == "tool_use":
            if not isinstance(block.get("input"), dict):
                raise _bad("a tool_use block needs an object `input`", f"{at}.input")
            out.append(Segment(json.dumps(block["input"], ensure_ascii=False), Trust.ASSISTANT,
                               (*path, j, JSON_KEY), tool=str(block.get("name") or "?")))
        elif kind == "tool_result":
            if block.get("content") is not None:
                _text_blocks(block["content"], Trust.TOOL, (*path, j, "content"),
                             f"{at}.content", out)
        else:
            if kind in PROVIDER_CALLS and not isinstance(block.get("input"), dict):
                raise _bad(f"a {kind} block needs an object `input`", f"{at}.input")
            read_block(block, trust, (*path, j), out)


def apply_request(
    body: dict[str, Any], action: Action, masked_texts: list[str], decision: Decision
) -> dict[str, Any]:
    """The request as it goes upstream: masked texts, forbidden tools taken out."""
    doc = with_masked_texts(body, action, masked_texts, lambda segment, text: (
        _masked_input(text) if segment.tool and segment.path[-1] == JSON_KEY else text))
    dropped = removed_places(action, decision, "tools")
    choice = body.get("tool_choice")
    if dropped and isinstance(choice, dict) and choice.get("name") in {
            body["tools"][k].get("name") for k in dropped}:
        raise hosted_refusal(action, decision)  # without it the request is malformed
    servers = removed_places(action, decision, "mcp_servers")
    if servers:
        kept_servers = [s for k, s in enumerate(body["mcp_servers"]) if k not in servers]
        if kept_servers:
            doc.root["mcp_servers"] = kept_servers
        else:
            doc.root.pop("mcp_servers", None)
    if decision.removed_offered_tools or dropped:
        removed = set(decision.removed_offered_tools)
        kept = [t for k, t in enumerate(body["tools"]) if k not in dropped
                and not (agent_runs(t.get("type", "custom")) and t.get("name") in removed)]
        if kept:
            doc.root["tools"] = kept
        else:  # no tool left to choose: a `tool_choice` would be refused upstream
            doc.root.pop("tools", None)
            doc.root.pop("tool_choice", None)
    return doc.root


def _masked_input(text: str) -> Any:
    """A tool_use `input` back from its masked JSON text; refused if masking broke it
    (personal data outside a JSON string), rather than sent unmasked."""
    try:
        return json.loads(text)
    except ValueError:
        raise ProtocolError(400, "a tool_use input holds personal data outside a JSON string, "
                            "which lictor cannot mask in place", param="messages",
                            code="unmaskable_input") from None


def tool_call(block: dict[str, Any]) -> ToolCall:
    value = block.get("input")
    args = value if isinstance(value, dict) else {}
    return ToolCall(name=str(block.get("name") or ""), arguments=args,
                    call_id=str(block.get("id") or ""),
                    raw_arguments=json.dumps(args, ensure_ascii=False))


def _content(resp: Any) -> list[dict[str, Any]]:
    content = resp.get("content") if isinstance(resp, dict) else None
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise ProtocolError(502, "the upstream model returned an invalid response",
                            error_type="upstream_error")
    return content


def parse_response(resp: Any) -> Action:
    """The model's answer as an action: its text and the tool uses it proposes, and every
    other block's strings (a provider-run tool's result is `Trust.TOOL`: content the model
    read, which the engine judges with the request-direction rules)."""
    action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, PROTOCOL)
    for j, block in enumerate(_content(resp)):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            action.segments.append(Segment(block["text"], Trust.ASSISTANT, ("content", j)))
            if block.get("citations"):
                cited(block, ("content", j), action.segments)
        elif kind == "tool_use":
            action.tool_calls.append(tool_call(block))
        else:
            read_block(block, Trust.ASSISTANT, ("content", j), action.segments)
    return action


def produced(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """What the model produced (text, tool uses, and every other block's texts as `items`),
    in the audit's per-choice form."""
    blocks = _content(resp)
    items = audit_items((audit_kind(blocks, s.path), s.text)
                        for s in parse_response(resp).segments)
    text = "".join(b["text"] for b in blocks
                   if b.get("type") == "text" and isinstance(b.get("text"), str))
    calls = [{"name": str(b.get("name", "")), "arguments": json.dumps(b.get("input"))}
             for b in blocks if b.get("type") == "tool_use"]
    return [{"index": 0, "content": text or None, "tool_calls": calls,
             "finish_reason": resp.get("stop_reason"), **items}]


def audit_kind(blocks: list[dict[str, Any]], path: tuple[str | int, ...]) -> str | None:
    """The audited item a segment at `path` of an answer belongs to: a text block's
    citations, or another block's type; None for a text block's text (the audit's content)."""
    if len(path) == 2:
        return None
    return "citations" if path[2] == "citations" else str(blocks[int(path[1])].get("type"))


def usage_tokens(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    return sum(v for k in ("input_tokens", "output_tokens")
               if isinstance(v := usage.get(k), int))


def apply_response(
    resp: dict[str, Any], decision: Decision, vault: PlaceholderVault
) -> dict[str, Any]:
    """The answer the agent sees: placeholders restored (in every string of every block),
    forbidden tool uses replaced by a text block saying why."""
    removed = set(decision.removed_tool_calls)
    blocks = _content(resp)
    calls = [tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    notes = refusal_notes(decision, calls)
    out: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append(restore_strings(block, vault))
        elif kind == "tool_use":
            if str(block.get("id") or "") in removed:
                continue
            out.append({**block, "input": restore_json(block.get("input"), vault)})
        else:  # thinking, provider-run tools' calls and results, unknown types
            out.append(restored(block, vault))
    if notes:
        out.append({"type": "text", "text": "\n".join(notes)})
    result = {**resp, "content": out}
    if calls and removed and not any(b.get("type") == "tool_use" for b in out) \
            and resp.get("stop_reason") == "tool_use":
        result["stop_reason"] = "end_turn"
    return result
