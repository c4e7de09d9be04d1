"""MCP (JSON-RPC 2.0 messages): wire JSON to `Action`s, and decisions back onto the wire.

Parsing validates the JSON-RPC envelope and the params lictor relies on (a tool call's
name and arguments); anything else passes untouched. Results are read for the untrusted
text an agent's model will see (tool output, resource contents, prompts, descriptions),
each with a path so a masked text can be put back where it was.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lictor.adapters.json_body import JsonBodyError, parse_json_bytes
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Direction,
    Finding,
    Segment,
    ToolCall,
    ToolDefinition,
    Trust,
    Verdict,
)

PROTOCOL = "mcp"

# JSON-RPC's own error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# lictor's, in the range JSON-RPC leaves to servers (-32000 to -32099)
POLICY_BLOCKED = -32001
APPROVAL_REQUIRED = -32002
LIMIT_REACHED = -32003
UNKNOWN_SERVER = -32004
UPSTREAM_FAILED = -32010
AUDIT_UNAVAILABLE = -32011
NOT_AUTHENTICATED = -32012

MAX_DEPTH = 64  # of structured content read for text; deeper is refused, not skipped


class JsonRpcError(Exception):
    """A message lictor answers itself: code, message, the HTTP status, the request's id."""

    def __init__(self, code: int, message: str, *, status: int = 200, id: Any = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.id, self.data = code, message, status, id, data

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"jsonrpc": "2.0", "id": self.id, "error": error}


class Kind(StrEnum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"


@dataclass(slots=True, frozen=True)
class Message:
    """One validated JSON-RPC message; `body` is exactly what is checked and forwarded."""

    kind: Kind
    body: dict[str, Any]

    @property
    def id(self) -> Any:
        return self.body.get("id")

    @property
    def method(self) -> str:
        return str(self.body.get("method") or "")

    def wire(self) -> bytes:
        return dump(self.body)


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def id_key(value: Any) -> str:
    """Request ids compared as JSON: 1 and "1" are different requests."""
    return json.dumps(value)


def parse_body(raw: bytes) -> Message:
    """A POST body from an agent: one JSON-RPC message. Batches are refused."""
    try:
        value = parse_json_bytes(raw)
    except JsonBodyError as exc:
        raise JsonRpcError(PARSE_ERROR, f"parse error: the body is not valid JSON ({exc})",
                           status=400) from None
    if isinstance(value, list):
        raise JsonRpcError(INVALID_REQUEST, "JSON-RPC batches are not accepted: send one "
                           "message per POST (MCP dropped batching in protocol 2025-06-18)",
                           status=400)
    return parse_message(value)


def parse_message(value: Any, status: int = 400) -> Message:
    """Classify one decoded JSON-RPC 2.0 message, or raise an invalid-request error."""
    def invalid(why: str, id: Any = None) -> JsonRpcError:
        return JsonRpcError(INVALID_REQUEST, f"invalid JSON-RPC message: {why}", status=status,
                            id=id)

    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        raise invalid('it must be an object with "jsonrpc": "2.0"')
    has_id = "id" in value
    ident = value.get("id")
    valid_id = isinstance(ident, str | int) and not isinstance(ident, bool)
    method = value.get("method")
    if method is not None:
        if not isinstance(method, str) or not method:
            raise invalid("`method` must be a non-empty string", ident if valid_id else None)
        if not isinstance(value.get("params", {}), dict):
            raise invalid("`params` must be an object", ident if valid_id else None)
        if not has_id:
            return Message(Kind.NOTIFICATION, value)
        if not valid_id:
            raise invalid("a request's `id` must be a string or an integer")
        return Message(Kind.REQUEST, value)
    if has_id and ("result" in value) != ("error" in value):
        if not (valid_id or (ident is None and "error" in value)):
            raise invalid("a response's `id` must be a string or an integer")
        return Message(Kind.RESPONSE, value)
    raise invalid("it is neither a request, a notification nor a response",
                  ident if valid_id else None)


def params(message: Message) -> dict[str, Any]:
    found = message.body.get("params")
    return found if isinstance(found, dict) else {}


def tool_call(message: Message) -> ToolCall:
    """The call a tools/call request makes; its raw arguments are what code rules scan."""
    p = params(message)
    name = p.get("name")
    if not isinstance(name, str) or not name:
        raise JsonRpcError(INVALID_PARAMS, "tools/call needs `params.name`, the tool to call",
                           status=400, id=message.id)
    arguments = p.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise JsonRpcError(INVALID_PARAMS, "tools/call `params.arguments` must be an object",
                           status=400, id=message.id)
    return ToolCall(name, arguments, call_id=id_key(message.id),
                    raw_arguments=json.dumps(arguments, ensure_ascii=False))


def call_action(call: ToolCall) -> Action:
    return Action(ActionKind.MCP_CALL, Direction.REQUEST, PROTOCOL, tool_calls=[call])


# -- tools/list -----------------------------------------------------------------------


def listed_tools(result: Any) -> list[tuple[str, ToolDefinition]]:
    """Each well-formed tool a tools/list result offers: name and what the model reads."""
    tools = result.get("tools") if isinstance(result, dict) else None
    out = []
    for tool in tools if isinstance(tools, list) else []:
        name = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(name, str) and name:
            out.append((name, ToolDefinition(str(tool.get("description") or ""),
                                             tool.get("inputSchema") or {})))
    return out


def is_tool_list(result: Any) -> bool:
    return isinstance(result, dict) and isinstance(result.get("tools"), list)


def keep_tools(result: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """The result with only the tools named in `keep` (malformed entries go too)."""
    tools = [t for t in result["tools"] if isinstance(t, dict) and t.get("name") in keep]
    return {**result, "tools": tools}


# -- results: the untrusted text in them ---------------------------------------------

# Results that carry no text for a model: passed on unread.
_NO_TEXT = frozenset({"ping", "logging/setLevel", "resources/subscribe",
                      "resources/unsubscribe", "completion/complete"})
_LISTS = {"resources/list": "resources", "resources/templates/list": "resourceTemplates",
          "prompts/list": "prompts"}


class TooDeep(ValueError):
    pass


def result_action(method: str, result: Any) -> Action:
    """The texts of a result the agent's model will read, as untrusted request segments.

    `method` is the request's; "" when unknown (a response replayed on a resumed stream):
    then every string in the result is read, so nothing passes unread.
    """
    action = Action(ActionKind.TOOL_RESULT, Direction.REQUEST, PROTOCOL)
    out = action.segments
    if not isinstance(result, dict) or method in _NO_TEXT:
        return action
    if method == "tools/call":
        for i, part in enumerate(_items(result.get("content"))):
            _content(part, ("content", i), Trust.TOOL, out)
        if "structuredContent" in result:
            _strings(result["structuredContent"], ("structuredContent",), out, 0)
    elif method == "resources/read":
        for i, item in enumerate(_items(result.get("contents"))):
            _text(item, "text", ("contents", i), Trust.RETRIEVED, out)
    elif method == "prompts/get":
        _text(result, "description", (), Trust.TOOL, out)
        for i, msg in enumerate(_items(result.get("messages"))):
            if isinstance(msg, dict):
                _content(msg.get("content"), ("messages", i, "content"), Trust.TOOL, out)
    elif method == "initialize":
        _text(result, "instructions", (), Trust.TOOL, out)
    elif method in _LISTS:
        for i, item in enumerate(_items(result.get(_LISTS[method]))):
            _text(item, "description", (_LISTS[method], i), Trust.TOOL, out)
    else:
        _strings(result, (), out, 0)
    return action


def server_request_action(message: Message) -> Action:
    """A server's own request (sampling, elicitation, ...): every string in its params is
    read as untrusted, since the agent's model or its user will read them (a sampling
    prompt, a system prompt, tool descriptions, an elicitation message and its form)."""
    action = Action(ActionKind.TOOL_RESULT, Direction.REQUEST, PROTOCOL)
    found = {k: v for k, v in params(message).items() if k != "_meta"}
    _strings(found, (), action.segments, 0)
    return action


def answer_action(body: dict[str, Any]) -> Action:
    """An agent's answer to a server's request (a sampling result, elicitation content):
    every string it sends out, read like a tool call's arguments (outgoing data)."""
    action = Action(ActionKind.MCP_CALL, Direction.RESPONSE, PROTOCOL)
    if "result" in body:
        _strings(body["result"], ("result",), action.segments, 0, Trust.ASSISTANT)
    else:
        _text(body.get("error"), "message", ("error",), Trust.ASSISTANT, action.segments)
    return action


def error_action(error: Any) -> Action:
    """An error's message reaches the model too (a failed call's explanation)."""
    action = Action(ActionKind.TOOL_RESULT, Direction.REQUEST, PROTOCOL)
    _text(error, "message", (), Trust.TOOL, action.segments)
    return action


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(obj: Any, key: str, path: tuple[str | int, ...], trust: Trust,
          out: list[Segment]) -> None:
    if isinstance(obj, dict) and isinstance(obj.get(key), str):
        out.append(Segment(obj[key], trust, (*path, key)))


def _content(part: Any, path: tuple[str | int, ...], trust: Trust, out: list[Segment]) -> None:
    """A content block: text, or an embedded resource's text; images and links carry none."""
    if not isinstance(part, dict):
        return
    if part.get("type") == "text":
        _text(part, "text", path, trust, out)
    elif part.get("type") == "resource":
        _text(part.get("resource"), "text", (*path, "resource"), trust, out)


def _strings(value: Any, path: tuple[str | int, ...], out: list[Segment], depth: int,
             trust: Trust = Trust.TOOL) -> None:
    if depth > MAX_DEPTH:
        raise TooDeep(f"the message nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        out.append(Segment(value, trust, path))
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings(item, (*path, key), out, depth + 1, trust)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _strings(item, (*path, i), out, depth + 1, trust)


def apply_masks(value: dict[str, Any], action: Action, masked: list[str]) -> dict[str, Any]:
    """`value` (a result or an error) with each segment's masked text in place; copied
    only when something changed."""
    changed = [(s.path, text) for s, text in zip(action.segments, masked, strict=True)
               if text != s.text]
    if not changed:
        return value
    out = copy.deepcopy(value)
    for path, text in changed:
        cur: Any = out
        for key in path[:-1]:
            cur = cur[key]
        cur[path[-1]] = text
    return out


# -- decisions back onto the wire ----------------------------------------------------


def response(ident: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _data(finding: Finding, request_id: str, code: str) -> dict[str, Any]:
    return {"lictor": {"code": code, "rule": finding.rule_id, "verdict": finding.verdict.value,
                       "owasp": list(finding.owasp), "request_id": request_id}}


def refusal(finding: Finding, what: str, ident: Any, request_id: str) -> JsonRpcError:
    """The JSON-RPC error for a refused message, naming the rule and why."""
    if finding.verdict is Verdict.APPROVE:
        return JsonRpcError(
            APPROVAL_REQUIRED,
            f"lictor holds this {what} for human approval: rule {finding.rule_id}: "
            f"{finding.message}. It was not passed on.",
            id=ident, data=_data(finding, request_id, "approval_required"))
    if finding.retry_after is not None:
        data = _data(finding, request_id, "rate_limit_exceeded")
        data["lictor"]["retry_after_s"] = int(finding.retry_after + 0.999)
        return JsonRpcError(
            LIMIT_REACHED,
            f"lictor refused this {what}: limit {finding.rule_id} reached: {finding.message}",
            id=ident, data=data)
    return JsonRpcError(
        POLICY_BLOCKED, f"lictor blocked this {what}: rule {finding.rule_id}: {finding.message}",
        id=ident, data=_data(finding, request_id, "policy_violation"))


def withheld_tool_result(finding: Finding, request_id: str) -> dict[str, Any]:
    """What the agent gets instead of a tool result that failed a check: a tool error its
    model can read and act on, naming the rule (not the withheld text)."""
    text = (f"[lictor] This tool result was withheld: rule {finding.rule_id}: "
            f"{finding.message} (lictor request {request_id}).")
    return {"content": [{"type": "text", "text": text}], "isError": True}
