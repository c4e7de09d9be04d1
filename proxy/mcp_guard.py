"""What lictor decides about each MCP message, from the engine and the pin store (no HTTP).

A tools/call is decided before it reaches the server, with its arguments (Cedar, argument
rules, code-execution patterns, caps, loops, approvals), and only for a tool whose pinned
definition the server still serves. What comes back is untrusted input, judged before the
agent sees it: a tool list loses the tools the agent may not call or that wait for an
admin; a result that fails a blocking rule is withheld; personal data in it is masked.
A server's own requests (sampling, elicitation) are authorized (Cedar's `call_mcp`, for
their method) and judged the same way, as are its notifications (logs, progress: a
failing one is dropped); the agent's answer to a request is outgoing data, read like a
tool call's arguments.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lictor.adapters import mcp
from lictor.adapters.mcp import JsonRpcError, Kind, Message
from lictor.enforcement.engine import INTERNAL_ERROR_RULE, Engine
from lictor.enforcement.types import (
    STOPS,
    Action,
    ActionKind,
    ApprovalNeed,
    Decision,
    Direction,
    Finding,
    Principal,
    ToolCall,
    ToolDefinition,
    Verdict,
    combine,
)
from lictor.proxy.config import McpServerConfig
from lictor.proxy.mcp_pins import PinStore

PIN_RULE = "lictor.mcp-tool-pin"
_DROPS = STOPS | {Verdict.FLAG}  # a server notification with such a finding is dropped


def _pin_finding(message: str, tool: str, verdict: Verdict) -> Finding:
    return Finding(PIN_RULE, verdict, ("ASI04",), "high", message, evidence=tool)


def _gate(engine: Engine, principal: Principal, session: str, counts: bool) -> list[Finding]:
    """The kill switch, for every message; request rates count JSON-RPC requests only, not
    the notifications, streams and session ends an MCP client sends along."""
    findings: list[Finding] = []
    if counts:
        engine.limits.check_request(principal, session, findings)
    else:
        engine.limits.check_kill_switch(principal, findings)
    return findings


def _refused(found: Finding, principal: Principal, tool: str) -> Finding:
    """A call Cedar removes is the whole request here: it is refused, and said so."""
    policy = found.rule_id.removeprefix("cedar:")
    return replace(found, verdict=Verdict.BLOCK, message=f"agent {principal.agent_id!r} may "
                   f"not call tool {tool!r} (policy {policy})")


def _stops(findings: list[Finding]) -> bool:
    return any(f.verdict in STOPS and not f.shadow for f in findings)


@dataclass(slots=True, frozen=True)
class Caller:
    """Who talks to which server, in which lictor session, under which request id."""

    principal: Principal
    server: McpServerConfig
    session: str  # the agent's x-lictor-session: per-session limits and taint
    request_id: str


@dataclass(slots=True)
class Checked:
    """A message from an agent, decided: the refusal to answer, if it does not go on."""

    decision: Decision
    tool: str = ""
    content: list[dict[str, Any]] = field(default_factory=list)  # what audit keeps
    refusal: JsonRpcError | None = None
    call: ToolCall | None = None  # a tools/call, for the approval flow
    # an agent's refused answer to a server's request: the error the server gets instead,
    # so it is not left waiting (the agent's POST is accepted; audit says what happened)
    substitute: Message | None = None


@dataclass(slots=True)
class Judged:
    """A response from a server, judged: `body` is what the agent gets."""

    body: dict[str, Any]
    decision: Decision
    hidden: dict[str, str] = field(default_factory=dict)  # tool -> why it was taken out
    withheld: bool = False
    content: list[dict[str, Any]] = field(default_factory=list)  # masked, redacted texts


class McpGuard:
    def __init__(self, engine: Callable[[], Engine], pins: PinStore) -> None:
        self._engine = engine  # read per message: a policy reload swaps the engine
        self.pins = pins

    # -- from the agent -----------------------------------------------------------------

    def check(self, caller: Caller, message: Message, answers: str = "") -> Checked:
        """Kill switch and rates for every message; a tools/call is authorized in full; an
        answer to a server's request (of method `answers`, "" if unknown) is read for
        secrets like a tool call's arguments.

        Raises JsonRpcError for a tools/call without a usable name or arguments."""
        engine = self._engine()
        principal, session = caller.principal, caller.session
        findings = _gate(engine, principal, session, counts=message.kind is Kind.REQUEST)
        if message.kind is Kind.REQUEST:
            name = mcp.params(message).get("name") if message.method == "tools/call" else ""
            tool = name if isinstance(name, str) else ""
            denied = engine.authorize_mcp(principal, caller.server.name, message.method, tool)
            if denied is not None:
                findings.append(denied)
        checked = Checked(Decision(Verdict.ALLOW))
        removed: list[str] = []
        approvals: list[ApprovalNeed] = []
        if message.kind is Kind.REQUEST and message.method == "tools/call":
            call = mcp.tool_call(message)
            checked.tool, checked.call = call.name, call
            checked.content = [{"path": ["params", "arguments"],
                                "text": engine.redact(call.raw_arguments)}]
            if not _stops(findings):
                self._check_pin(caller.server, call.name, findings)
            if not _stops(findings):
                decided = engine.evaluate_response(principal, mcp.call_action(call), session)
                removed, approvals = decided.removed_tool_calls, decided.approvals
                for f in decided.findings:
                    cedar = bool(removed) and f.rule_id.startswith("cedar:")
                    findings.append(_refused(f, principal, call.name) if cedar else f)
        gated = _stops(findings)
        if message.kind is Kind.RESPONSE and not gated:
            checked.content = self._check_answer(engine, caller, message, findings)
        checked.decision = Decision(combine(findings), findings, engine.policy.content_hash,
                                    removed_tool_calls=removed, approvals=approvals)
        what = "tool call" if checked.tool else f"MCP {message.kind.value}"
        checked.refusal = self.refusal(checked.decision, what, message, caller.request_id)
        if message.kind is Kind.RESPONSE and not gated and checked.decision.blocking_finding:
            found = checked.decision.blocking_finding
            what = f"answer to {answers}" if answers else "answer"
            error = mcp.refusal(found, what, message.id, caller.request_id)
            checked.substitute = Message(Kind.RESPONSE, error.body())
            checked.refusal = None
        return checked

    @staticmethod
    def _check_answer(engine: Engine, caller: Caller, message: Message,
                      out: list[Finding]) -> list[dict[str, Any]]:
        """An agent's answer to a server's request leaves for the server: every text in it
        is scanned as outgoing (secrets block); audit keeps it redacted."""
        try:
            action = mcp.answer_action(message.body)
        except mcp.TooDeep as exc:
            raise JsonRpcError(mcp.INVALID_REQUEST, str(exc), status=400) from None
        decided = engine.evaluate_response(caller.principal, action, caller.session)
        out.extend(f for f in decided.findings if f not in out)
        return [{"path": list(s.path), "text": engine.redact(s.text)} for s in action.segments]

    def check_session(self, principal: Principal, session: str) -> Decision:
        """Opening a server stream or ending a session: the kill switch."""
        engine = self._engine()
        findings = _gate(engine, principal, session, counts=False)
        return Decision(combine(findings), findings, engine.policy.content_hash)

    @staticmethod
    def refusal(decision: Decision, what: str, message: Message | None,
                request_id: str) -> JsonRpcError | None:
        found = decision.blocking_finding
        if found is None:
            return None
        if message is not None and message.kind is Kind.REQUEST:
            return mcp.refusal(found, what, message.id, request_id)
        err = mcp.refusal(found, what, None, request_id)  # nothing to answer: an HTTP error
        err.status = 429 if found.retry_after is not None else 403
        return err

    def _check_pin(self, server: McpServerConfig, tool: str, out: list[Finding]) -> None:
        pin = self.pins.get(server.name, tool)
        why = (pin.refusal() if pin is not None else
               f"lictor has not seen the definition of tool {tool!r} of MCP server "
               f"{server.name!r}: list the tools first")
        if why:
            out.append(_pin_finding(why, tool, Verdict.BLOCK))

    # -- from the server ----------------------------------------------------------------

    def judge_server_request(self, caller: Caller, message: Message) -> Judged:
        """A server's own request (sampling, elicitation, ...): Cedar's `call_mcp` for its
        method, then its texts judged like a tool result (and the session tainted the same
        way). `withheld`: the agent never sees it; `body` is the error the server gets."""
        engine = self._engine()
        principal, server, method = caller.principal, caller.server.name, message.method
        findings = _gate(engine, principal, caller.session, counts=False)
        denied = engine.authorize_mcp(principal, server, method, "")
        if denied is not None:
            policy = denied.rule_id.removeprefix("cedar:")
            findings.append(replace(denied, message=f"MCP server {server!r} may not send "
                                    f"{method} to agent {principal.agent_id!r} (policy "
                                    f"{policy})"))
        body, content = message.body, list[dict[str, Any]]()
        if not _stops(findings):
            body, content = self._judge_params(engine, caller, message, findings)
        decision = Decision(combine(findings), findings, engine.policy.content_hash)
        refusal = self.refusal(decision, f"{method} request", message, caller.request_id)
        if refusal is not None:
            return Judged(refusal.body(), decision, withheld=True, content=content)
        return Judged(body, decision, content=content)

    def judge_notification(self, caller: Caller, message: Message) -> Judged:
        """A server's notification (a log message, progress, a resource update, ...): its
        texts judged like a tool result. `withheld`: dropped (it has no reply). Stricter
        than a tool result: what a rule only flags there (a secret) drops a notification,
        which carries nothing the agent needs."""
        engine = self._engine()
        findings: list[Finding] = []
        body, content = self._judge_params(engine, caller, message, findings)
        decision = Decision(combine(findings), findings, engine.policy.content_hash)
        dropped = any(f.verdict in _DROPS and not f.shadow for f in findings)
        return Judged(body, decision, withheld=dropped, content=content)

    @staticmethod
    def _judge_params(engine: Engine, caller: Caller, message: Message,
                      findings: list[Finding]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Every string of a server message's params, read as untrusted (the session is
        tainted as by a tool result): the body with personal data masked, and what audit
        keeps; the findings are added to `findings`."""
        body: dict[str, Any] = message.body
        content: list[dict[str, Any]] = []
        try:
            action = mcp.server_request_action(message)
        except mcp.TooDeep as exc:
            findings.append(Finding(INTERNAL_ERROR_RULE, Verdict.BLOCK, (), "high", str(exc)))
            return body, content
        if action.segments:
            outcome = engine.evaluate_request(caller.principal, action, caller.session)
            findings.extend(f for f in outcome.decision.findings if f not in findings)
            content = [{"trust": s.trust.value, "path": ["params", *s.path], "text": text}
                       for s, text in zip(action.segments, outcome.audit_texts, strict=False)]
            if outcome.decision.verdict not in STOPS:
                masked = mcp.apply_masks(mcp.params(message), action, outcome.masked_texts)
                body = {**body, "params": masked}
        return body, content

    def judge(self, caller: Caller, method: str, body: dict[str, Any]) -> Judged:
        """A response to a request of `method` ("" if unknown: then read whole)."""
        try:
            if "error" in body:
                return self._judge_texts(caller, body, "error", mcp.error_action(body["error"]),
                                         method)
            result = body.get("result")
            if method == "tools/list" or (not method and mcp.is_tool_list(result)):
                return self._judge_tools(caller, body)
            action = mcp.result_action(method, result)
        except mcp.TooDeep as exc:
            finding = Finding(INTERNAL_ERROR_RULE, Verdict.BLOCK, (), "high", str(exc))
            decision = Decision(Verdict.BLOCK, [finding], self._engine().policy.content_hash)
            return self._withheld(body, decision, method, caller.request_id, [])
        return self._judge_texts(caller, body, "result", action, method)

    def _judge_texts(self, caller: Caller, body: dict[str, Any], key: str, action: Action,
                     method: str) -> Judged:
        engine = self._engine()
        if not action.segments:
            return Judged(body, Decision(Verdict.ALLOW, [], engine.policy.content_hash))
        outcome = engine.evaluate_request(caller.principal, action, caller.session)
        content = [{"trust": s.trust.value, "path": [key, *s.path], "text": text}
                   for s, text in zip(action.segments, outcome.audit_texts, strict=False)]
        if outcome.decision.verdict in STOPS:
            return self._withheld(body, outcome.decision, method, caller.request_id, content)
        masked = mcp.apply_masks(body[key], action, outcome.masked_texts)
        return Judged({**body, key: masked}, outcome.decision, content=content)

    @staticmethod
    def _withheld(body: dict[str, Any], decision: Decision, method: str, request_id: str,
                  content: list[dict[str, Any]]) -> Judged:
        """A tool's output becomes a tool error the model can read; anything else, a
        JSON-RPC error."""
        finding = decision.blocking_finding
        assert finding is not None
        if method == "tools/call" and "result" in body:
            out = mcp.response(body.get("id"), mcp.withheld_tool_result(finding, request_id))
        else:
            out = mcp.refusal(finding, "MCP result", body.get("id"), request_id).body()
        return Judged(out, decision, withheld=True, content=content)

    def _judge_tools(self, caller: Caller, body: dict[str, Any]) -> Judged:
        """Hide every tool that waits for approval, whose description fails a blocking
        rule, or that the agent may not call (Cedar, stage `offer`)."""
        engine = self._engine()
        result = body.get("result")
        if not mcp.is_tool_list(result):  # no tools array: nothing a model could call
            return Judged(body, Decision(Verdict.ALLOW, [], engine.policy.content_hash))
        tools = mcp.listed_tools(result)
        counts = Counter(name for name, _ in tools)
        hidden: dict[str, str] = {}
        findings: list[Finding] = []
        offered: dict[str, ToolDefinition] = {}
        for name, definition in tools:
            if counts[name] > 1:
                hidden[name] = "the server lists it more than once"
                continue
            why = self.pins.observe(caller.server.name, name, definition,
                                    caller.server.pin == "first_use").refusal()
            if why:
                hidden[name] = why
                findings.append(_pin_finding(why, name, Verdict.FLAG))
                continue
            for found in engine.scan_text(definition.description, "request", "tool"):
                if found.verdict in STOPS and not found.shadow:
                    hidden[name] = f"its description fails rule {found.rule_id}"
                    findings.append(replace(found, verdict=Verdict.FLAG, evidence=name,
                                            message=f"tool {name!r} hidden: {found.message}"))
                else:
                    findings.append(found)
            if name not in hidden:
                offered[name] = definition
        outcome = engine.evaluate_request(caller.principal, Action(
            ActionKind.MCP_CALL, Direction.REQUEST, mcp.PROTOCOL, offered_tools=list(offered),
            tool_definitions=offered), caller.session)
        removed = outcome.decision.removed_offered_tools
        for found in outcome.decision.findings:
            stops = found.verdict in STOPS and not found.shadow
            if found.evidence in offered and (stops or found.evidence in removed):
                hidden[found.evidence] = f"rule {found.rule_id}: {found.message}"
                findings.append(replace(found, verdict=Verdict.FLAG))
            else:
                findings.append(found)
        decision = Decision(combine(findings), findings, engine.policy.content_hash,
                            removed_offered_tools=removed)
        if decision.verdict in STOPS:  # a stop no single tool explains: nothing is listed
            return self._withheld(body, decision, "tools/list", caller.request_id, [])
        kept = mcp.keep_tools(body["result"], {n for n, _ in tools} - hidden.keys())
        return Judged({**body, "result": kept}, decision, hidden)


class SessionOwners:
    """Which agent an upstream session id belongs to: the id is all an MCP server checks,
    so one agent must not ride another's session."""

    MAX = 50_000

    def __init__(self) -> None:
        self._owners: OrderedDict[tuple[str, str], str] = OrderedDict()

    def allows(self, server: str, session_id: str, agent: str) -> bool:
        owner = self._owners.get((server, session_id))
        return owner is None or owner == agent

    def bind(self, server: str, session_id: str, agent: str) -> None:
        self._owners[(server, session_id)] = agent
        self._owners.move_to_end((server, session_id))
        if len(self._owners) > self.MAX:
            self._owners.popitem(last=False)

    def unbind(self, server: str, session_id: str) -> None:
        self._owners.pop((server, session_id), None)


class ServerRequests:
    """The requests each server sent an agent and lictor passed on, by session: what an
    agent's answer answers (its method), for the check and the audit record."""

    MAX = 50_000

    def __init__(self) -> None:
        self._asked: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def add(self, server: str, session: str, message: Message) -> None:
        self._asked[(server, session, mcp.id_key(message.id))] = message.method
        if len(self._asked) > self.MAX:
            self._asked.popitem(last=False)

    def answered(self, server: str, session: str, message: Message) -> str:
        """The method of the request `message` answers, forgotten now; "" if unknown."""
        return self._asked.pop((server, session, mcp.id_key(message.id)), "")
