"""The audit entries the gateway writes, built in one place so what is kept is reviewable.

Entries hold masked and redacted content only: never raw personal data, agent or
upstream keys, or request headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lictor.enforcement.types import Action, Decision, Principal


def _principal(p: Principal | None) -> dict[str, str] | None:
    return p.as_record() if p is not None else None


def _decision(d: Decision) -> dict[str, Any]:
    return {
        "verdict": d.verdict.value,
        "findings": [f.as_record() for f in d.findings],
        "policy_hash": d.policy_hash,
    }


def refused(
    *,
    kind: str,
    request_id: str,
    principal: Principal | None,
    status: int,
    code: str | None,
    reason: str,
    policy_hash: str,
    path: str | None = None,
) -> dict[str, Any]:
    """A request that got an error instead of an answer.

    `rejected_request`: refused before any check ran (authentication, malformed input,
    limits), or checked but not sendable (what the route's backend cannot carry; then
    after the request's own record). `upstream_error`: checked and sent, but the upstream
    failed.
    """
    entry: dict[str, Any] = {
        "kind": kind,
        "request_id": request_id,
        "principal": _principal(principal),
        "status": status,
        "error_code": code,
        "reason": reason,
        "verdict": "block",
        "findings": [],
        "policy_hash": policy_hash,
    }
    if path is not None:
        entry["path"] = path
    return entry


def model_request(
    *,
    request_id: str,
    principal: Principal,
    action: Action,
    backend: str,
    stream: bool,
    decision: Decision,
    audit_texts: list[str],
) -> dict[str, Any]:
    what: dict[str, Any] = {
        "kind": action.kind.value,
        "protocol": action.protocol,
        "model": action.model,
        "backend": backend,
        "stream": stream,
        "offered_tools": action.offered_tools,
        "removed_offered_tools": decision.removed_offered_tools,
    }
    if action.hosted_tools:  # tools the provider runs: by type, and the host of MCP servers
        what["hosted_tools"] = [t.name + (f"@{t.host}" if t.host else "")
                                for t in action.hosted_tools]
        what["removed_hosted_tools"] = [what["hosted_tools"][i]
                                        for i in decision.removed_hosted_tools]
    return {
        "kind": "model_request",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": what,
        **_decision(decision),
        "content": [
            {"trust": s.trust.value, "path": list(s.path), "text": text}
            for s, text in zip(action.segments, audit_texts, strict=False)
        ],
    }


def redacted_choices(choices: list[dict[str, Any]],
                     redact: Callable[[str], str]) -> list[dict[str, Any]]:
    """What a model produced (`openai_chat.produced`), in the form audit keeps: its text,
    tool calls and other texts (`items`: a refusal, a provider-run tool's result), redacted."""
    return [
        {
            **c,
            "content": redact(c["content"]) if isinstance(c.get("content"), str) else None,
            "tool_calls": [
                {"name": t["name"], "arguments": redact(t["arguments"])}
                for t in c.get("tool_calls", [])
            ],
            **({"items": [{"type": i["type"], "texts": [redact(t) for t in i["texts"]]}
                          for i in c["items"]]} if c.get("items") else {}),
        }
        for c in choices
    ]


def model_response(
    *,
    request_id: str,
    principal: Principal,
    decision: Decision,
    choices: list[dict[str, Any]],
    usage: Any,
) -> dict[str, Any]:
    """`choices`: per choice, the (redacted) text and tool calls the model produced."""
    return {
        "kind": "model_response",
        "request_id": request_id,
        "principal": _principal(principal),
        **_decision(decision),
        "removed_tool_calls": decision.removed_tool_calls,
        "content": choices,
        "usage": usage if isinstance(usage, dict) else None,
    }


def admin_action(
    *,
    request_id: str,
    admin: Principal,
    action: str,
    agent: Principal,
    reason: str,
    policy_hash: str,
) -> dict[str, Any]:
    """An operator acted on an agent (kill switch): who, on whom, and why."""
    return _admin_entry(request_id, admin, {"kind": action, "agent": agent.agent_id}, reason,
                        policy_hash)


def _admin_entry(request_id: str, admin: Principal, action: dict[str, Any], reason: str,
                 policy_hash: str) -> dict[str, Any]:
    return {
        "kind": "admin_action",
        "request_id": request_id,
        "principal": {"admin": admin.agent_id},
        "action": action,
        "reason": reason,
        "verdict": "allow",
        "findings": [],
        "policy_hash": policy_hash,
    }


def approval_event(
    *,
    kind: str,
    request_id: str,
    agent: Principal | None,
    approval: dict[str, Any],
    policy_hash: str,
    admin: Principal | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """An approval asked for, used, refused, or decided by a person: who, which, why.

    `approval` is `Approval.as_record()`: a summary (PII redacted) and a binding HMAC,
    never the call's arguments."""
    entry: dict[str, Any] = {
        "kind": kind,
        "request_id": request_id,
        "principal": {"admin": admin.agent_id, "team": admin.team} if admin else _principal(agent),
        "approval": approval,
        "verdict": "allow" if kind in ("approval_used", "approval_vote") else "flag",
        "findings": [],
        "policy_hash": policy_hash,
    }
    if reason:
        entry["reason"] = reason
    return entry


def mcp_request(
    *,
    request_id: str,
    principal: Principal,
    server: str,
    message: str,
    method: str,
    tool: str,
    decision: Decision,
    content: list[dict[str, Any]],
) -> dict[str, Any]:
    """A message an agent sent an MCP server (`message`: request, notification, response,
    or the HTTP `get_stream` / `delete_session`), as decided before it is forwarded."""
    return {
        "kind": "mcp_request",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "mcp_call", "protocol": "mcp", "server": server,
                   "message": message, "method": method, "tool": tool or None},
        **_decision(decision),
        "content": content,
    }


def mcp_result(
    *,
    request_id: str,
    principal: Principal,
    server: str,
    method: str,
    tool: str,
    decision: Decision,
    hidden_tools: dict[str, str],
    withheld: bool,
    content: list[dict[str, Any]],
) -> dict[str, Any]:
    """What an MCP server answered, as judged before the agent sees it: tools hidden from a
    list (and why), whether the result was withheld, and its texts (masked and redacted)."""
    return {
        "kind": "mcp_result",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "tool_result", "protocol": "mcp", "server": server,
                   "method": method or None, "tool": tool or None},
        **_decision(decision),
        "hidden_tools": [{"tool": t, "reason": r} for t, r in hidden_tools.items()],
        "withheld": withheld,
        "content": content,
    }


def mcp_server_request(
    *,
    request_id: str,
    principal: Principal,
    server: str,
    method: str,
    decision: Decision,
    refused: bool,
    content: list[dict[str, Any]],
) -> dict[str, Any]:
    """A request an MCP server sent the agent (sampling, elicitation), as judged before the
    agent sees it: `refused` ones were answered by lictor and never reached it."""
    return {**_server_message("mcp_server_request", request_id=request_id,
                              principal=principal, server=server, method=method,
                              decision=decision), "refused": refused, "content": content}


def mcp_server_notification(
    *,
    request_id: str,
    principal: Principal,
    server: str,
    method: str,
    decision: Decision,
    dropped: bool,
    content: list[dict[str, Any]],
) -> dict[str, Any]:
    """A notification an MCP server sent the agent (a log message, progress) that a rule
    matched: `dropped` ones never reached it, others reached it masked."""
    return {**_server_message("mcp_server_notification", request_id=request_id,
                              principal=principal, server=server, method=method,
                              decision=decision), "dropped": dropped, "content": content}


def _server_message(kind: str, *, request_id: str, principal: Principal, server: str,
                    method: str, decision: Decision) -> dict[str, Any]:
    """What records of a server's own messages share (`kind`: mcp_server_<message>)."""
    return {
        "kind": kind,
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "mcp_call", "protocol": "mcp", "server": server,
                   "message": kind.removeprefix("mcp_"), "method": method},
        **_decision(decision),
    }


def mcp_tool_approval(
    *,
    request_id: str,
    admin: Principal,
    server: str,
    tool: str,
    digest: str,
    previous: str | None,
    reason: str,
    policy_hash: str,
) -> dict[str, Any]:
    """An operator pinned an MCP tool's definition: who, which definition, and why."""
    return _admin_entry(request_id, admin, {"kind": "approve_mcp_tool", "server": server,
                                            "tool": tool, "digest": digest,
                                            "previous_digest": previous}, reason, policy_hash)


def tool_call(
    *,
    request_id: str,
    principal: Principal,
    protocol: str,
    tool: str,
    decision: Decision,
    arguments: str,
) -> dict[str, Any]:
    """A tool call an in-process agent is about to run, as decided before it runs;
    `arguments` redacted."""
    return {
        "kind": "tool_call",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "tool_call", "protocol": protocol, "tool": tool},
        **_decision(decision),
        "removed_tool_calls": decision.removed_tool_calls,
        "content": [{"trust": "assistant", "path": ["arguments"], "text": arguments}],
    }


def tool_result(
    *,
    request_id: str,
    principal: Principal,
    protocol: str,
    tool: str,
    decision: Decision,
    withheld: bool,
    content: list[dict[str, Any]],
) -> dict[str, Any]:
    """What a tool returned to an in-process agent, as judged before the agent reads it."""
    return {
        "kind": "tool_result",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "tool_result", "protocol": protocol, "tool": tool},
        **_decision(decision),
        "withheld": withheld,
        "content": content,
    }


def http_request(
    *,
    request_id: str,
    principal: Principal,
    method: str,
    host: str,
    path: str,
    decision: Decision,
    content: list[str],
    scanned: bool,
) -> dict[str, Any]:
    """An outbound HTTP request seen by the egress proxy, as decided before it leaves:
    where to (the path without its query, which may carry secrets), and its body (masked
    and redacted). Headers are never kept: they carry credentials."""
    return {
        "kind": "http_request",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "http_request", "protocol": "http", "method": method,
                   "host": host, "path": path.split("?", 1)[0], "body_scanned": scanned},
        **_decision(decision),
        "content": [{"trust": "user", "path": ["body"], "text": t} for t in content],
    }


def http_response(
    *,
    request_id: str,
    principal: Principal,
    status: int,
    decision: Decision,
    body_bytes: int,
    scanned: bool,
) -> dict[str, Any]:
    """What the host answered, as judged before the agent sees it: status, size, findings
    (evidence redacted). The body itself is not kept."""
    return {
        "kind": "http_response",
        "request_id": request_id,
        "principal": _principal(principal),
        "action": {"kind": "tool_result", "protocol": "http", "status": status,
                   "body_bytes": body_bytes, "body_scanned": scanned},
        **_decision(decision),
        "content": [],
    }
