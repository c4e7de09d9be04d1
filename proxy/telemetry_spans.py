"""One request as its span describes it, gathered from the audit entries the request writes.

The entries are already redacted, and only the fields picked here leave: ids, verdicts,
rule ids, policy hash, model and tool names, token counts, error codes. Never content,
finding evidence or messages, reasons, keys or headers. Plain Python, no OpenTelemetry,
so what a span may carry is reviewable (and testable) on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lictor.enforcement.types import SEVERITY, STOPS, Verdict

Attributes = dict[str, str | bool | int | float | list[str]]

# gen_ai.provider.name by route backend (passthrough speaks the OpenAI API)
PROVIDERS = {"passthrough": "openai", "litellm": "litellm", "local": "lictor.local"}
# audit entry kinds that carry an engine decision: (protocol, stage)
DECISION_KINDS = {
    "model_request": ("openai", "request"),
    "model_response": ("openai", "response"),
    "mcp_request": ("mcp", "request"),
    "mcp_result": ("mcp", "response"),
    "mcp_server_request": ("mcp", "server_request"),
    "mcp_server_notification": ("mcp", "server_notification"),
}
REFUSED_KINDS = ("rejected_request", "upstream_error")
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")


def safe_name(value: Any) -> str:
    """A model, tool, method or error name as telemetry may carry it, else "": names come
    from agents and models, so anything that is not a plain identifier (an email, a
    sentence) is left out rather than exported."""
    return value if isinstance(value, str) and _NAME.fullmatch(value) else ""


def _verdict(value: Any) -> Verdict:
    try:
        return Verdict(value)
    except ValueError:
        return Verdict.BLOCK  # an entry lictor cannot read is treated as the worst case


def deciding_rule(findings: Any) -> str:
    """The rule behind a decision's verdict (its most severe enforced finding); "none"."""
    enforced = [f for f in findings or [] if isinstance(f, dict) and not f.get("shadow")]
    if not enforced:
        return "none"
    worst = max(enforced, key=lambda f: SEVERITY[_verdict(f.get("verdict"))])
    return safe_name(worst.get("rule")) or "none"


def decision_point(entry: dict[str, Any]) -> dict[str, str] | None:
    """The `lictor.decisions` attributes of an audit entry, if it records a decision."""
    where = DECISION_KINDS.get(entry.get("kind", ""))
    if where is None:
        return None
    return {"lictor.verdict": _verdict(entry.get("verdict")).value,
            "lictor.rule_id": deciding_rule(entry.get("findings")),
            "lictor.protocol": where[0], "lictor.stage": where[1]}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class RequestTrace:
    """What one chat completion or MCP message did, filled in while it runs."""

    protocol: str  # openai | mcp
    start_ns: int
    request_id: str = ""
    agent: str = ""
    verdict: Verdict = Verdict.ALLOW  # the most severe decision of the request
    rule_ids: list[str] = field(default_factory=list)
    shadow_rule_ids: list[str] = field(default_factory=list)
    blocking_rule: str = ""
    policy_hash: str = ""
    check_s: float = 0.0
    checks: int = 0
    error: str = ""  # lictor's error code, when it refused or the upstream failed
    model: str = ""
    backend: str = ""
    stream: bool | None = None
    response_model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: list[str] = field(default_factory=list)  # proposed by the model
    removed_tool_calls: int = 0
    server: str = ""
    message: str = ""  # MCP: request, notification, response, get_stream, delete_session
    method: str = ""
    tool: str = ""
    hidden_tools: int = 0
    withheld: bool = False
    events: list[str] = field(default_factory=list)  # approval entry kinds, in order
    # audit commits, (ms, entries or None when it failed), taken in after the answer is out
    commits: list[tuple[float, Sequence[dict[str, Any]] | None]] = field(default_factory=list)

    def absorb(self, entry: dict[str, Any]) -> None:
        """Take what telemetry may carry from one audit entry of this request."""
        kind = str(entry.get("kind", ""))
        self.request_id = self.request_id or safe_name(entry.get("request_id"))
        principal = entry.get("principal")
        if not self.agent and isinstance(principal, dict):
            self.agent = safe_name(principal.get("agent"))
        action = entry.get("action")
        action = action if isinstance(action, dict) else {}
        if kind in REFUSED_KINDS:
            self.error = self.error or safe_name(entry.get("error_code")) or str(
                _int(entry.get("status")) or "refused")
        elif kind == "model_request":
            self.model, self.backend = safe_name(action.get("model")), str(action.get("backend"))
            self.stream = bool(action.get("stream"))
        elif kind == "model_response":
            self._model_response(entry)
        elif kind == "mcp_request":
            self.server, self.message = safe_name(action.get("server")), str(action.get("message"))
            self.method, self.tool = safe_name(action.get("method")), safe_name(action.get("tool"))
        elif kind == "mcp_result":
            self.hidden_tools += len(entry.get("hidden_tools") or [])
            self.withheld = self.withheld or bool(entry.get("withheld"))
        elif kind == "mcp_server_request":
            self.withheld = self.withheld or bool(entry.get("refused"))
        elif kind == "mcp_server_notification":
            self.withheld = self.withheld or bool(entry.get("dropped"))
        elif kind.startswith("approval_"):
            self.events.append(safe_name(kind))
        if kind in DECISION_KINDS:
            self._decision(entry)

    def _model_response(self, entry: dict[str, Any]) -> None:
        usage = entry.get("usage") or {}
        self.input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        self.output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        for choice in entry.get("content") or []:
            for call in choice.get("tool_calls") or []:
                self.tool_calls.append(safe_name(call.get("name")) or "(not a name)")
        self.removed_tool_calls += len(entry.get("removed_tool_calls") or [])
        stream_error = entry.get("stream_error")
        if isinstance(stream_error, dict):
            self.error = self.error or safe_name(stream_error.get("code")) or "stream_failed"

    def _decision(self, entry: dict[str, Any]) -> None:
        verdict = _verdict(entry.get("verdict"))
        if SEVERITY[verdict] > SEVERITY[self.verdict]:
            self.verdict = verdict
        for finding in entry.get("findings") or []:
            rule = safe_name(finding.get("rule"))
            ids = self.shadow_rule_ids if finding.get("shadow") else self.rule_ids
            if rule and rule not in ids:
                ids.append(rule)
        if verdict in STOPS and not self.blocking_rule:
            self.blocking_rule = safe_name(deciding_rule(entry.get("findings")))
        self.policy_hash = safe_name(entry.get("policy_hash")) or self.policy_hash

    def error_type(self, status: int, body_code: str) -> str:
        """Why the request failed (`error.type`), or "" when it did not."""
        if self.error or body_code:
            return self.error or body_code
        if self.verdict is Verdict.BLOCK or self.withheld:
            return "policy_violation"
        if self.verdict is Verdict.APPROVE:
            return "approval_required"
        return str(status) if status >= 400 else ""

    @property
    def name(self) -> str:
        """`chat {model}` (GenAI), `execute_tool {tool}` for MCP tools/call, else the
        MCP method (or what the HTTP request was: get_stream, delete_session)."""
        if self.protocol == "openai":
            return f"chat {self.model}" if self.model else "chat"
        if self.method == "tools/call" and self.tool:
            return f"execute_tool {self.tool}"
        return self.method or f"mcp {safe_name(self.message) or 'request'}"

    def attributes(self, status: int, error: str) -> Attributes:
        out: Attributes = {"lictor.verdict": self.verdict.value, "lictor.rule_ids": self.rule_ids,
                           "lictor.check_time_ms": round(self.check_s * 1000, 3),
                           "lictor.status_code": status}
        if self.protocol == "openai":
            out["gen_ai.operation.name"] = "chat"
            out |= self._chat_attributes()
        else:
            out |= self._mcp_attributes()
        optional: Attributes = {
            "lictor.request_id": self.request_id, "lictor.agent": self.agent,
            "lictor.policy_hash": self.policy_hash, "lictor.shadow_rule_ids": self.shadow_rule_ids,
            "error.type": error}
        out |= {k: v for k, v in optional.items() if v}
        return out

    def _chat_attributes(self) -> Attributes:
        out: Attributes = {}
        if self.backend in PROVIDERS:
            out["gen_ai.provider.name"] = PROVIDERS[self.backend]
        if self.model:
            out["gen_ai.request.model"] = self.model
        if self.stream is not None:
            out["gen_ai.request.stream"] = self.stream
        if self.response_model:
            out["gen_ai.response.model"] = self.response_model
        if self.input_tokens is not None:
            out["gen_ai.usage.input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            out["gen_ai.usage.output_tokens"] = self.output_tokens
        if self.removed_tool_calls:
            out["lictor.removed_tool_calls"] = self.removed_tool_calls
        return out

    def _mcp_attributes(self) -> Attributes:
        out: Attributes = {}
        if self.method == "tools/call":
            out["gen_ai.operation.name"] = "execute_tool"
        if self.tool:
            out["gen_ai.tool.name"] = self.tool
        if self.method:
            out["mcp.method.name"] = self.method
        if self.server:
            out["lictor.mcp.server"] = self.server
        if self.hidden_tools:
            out["lictor.mcp.hidden_tools"] = self.hidden_tools
        if self.withheld:
            out["lictor.mcp.withheld"] = True
        return out

    def status_description(self, error: str) -> str:
        return f"{error}: {self.blocking_rule}" if self.blocking_rule else error
