"""Direct-access mode: the gateway's checks as a library, for agents that cannot add a
network hop. One `Guard` per agent: it opens the same rule packs, data dir and audit store
as `lictor serve` (`proxy.components`), keeps the agent's session state (taint, loops,
budgets), and writes the same audit records; every refusal raises `Blocked`.

Synchronous and thread-safe (one lock: the engine's caches and the audit chain are shared);
async frameworks call it directly (bench/guard_latency.py measures what it costs). Imports
no aiohttp and no framework.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from lictor.adapters import openai_chat
from lictor.adapters.errors import ProtocolError
from lictor.adapters.in_process import Blocked, CheckedInput, CheckedOutput
from lictor.audit import AuditWriteError
from lictor.enforcement.limits import kill_key
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import (
    STOPS,
    Action,
    ActionKind,
    Decision,
    Direction,
    Finding,
    Principal,
    Segment,
    ToolCall,
    Trust,
    Verdict,
    combine,
)
from lictor.proxy import audit_entries
from lictor.proxy.approval_flow import HELD_RULE, ApprovalFlow
from lictor.proxy.components import Components, open_components
from lictor.proxy.config import Config, ConfigError, load_config
from lictor.proxy.kill_switches import KillSwitches

log = logging.getLogger("lictor.guard")

PROTOCOL = "in-process"
BACKEND = "in-process"  # audit records: no lictor backend served the model call
INVALID_INPUT_RULE = "lictor.invalid-input"
AUDIT_UNAVAILABLE_RULE = "lictor.audit-unavailable"


MAX_RELEASED = 1024


def _released_key(call: dict[str, Any]) -> tuple[str, Any]:
    fn = call.get("function") or {}
    raw = fn.get("arguments") or ""
    try:
        arguments = json.loads(raw) if raw else {}
    except ValueError:
        arguments = raw
    return str(fn.get("name") or ""), arguments


def _refusal(rule: str, message: str) -> Decision:
    return Decision(Verdict.BLOCK, [Finding(rule, Verdict.BLOCK, (), "high", message)])


class Guard:
    """lictor's engine in-process, for one agent and one session."""

    def __init__(self, parts: Components, principal: Principal, session: str = "", *,
                 switches: KillSwitches | None = None, disabled: bool = False,
                 lock: threading.RLock | None = None) -> None:
        self._parts = parts
        self.principal = principal
        self.session = session[:128]  # per-session limits and taint, as x-lictor-session
        self.engine = parts.engine
        self.approvals = ApprovalFlow(parts.approvals, lambda: self.engine.policy.content_hash)
        self._switches = switches  # operators' stops, read before each check
        self._disabled = disabled  # `disabled: true` in the config: only a config change lifts
        self._lock = lock or threading.RLock()
        # call id -> (tool, arguments) of calls check_output released: authorize_tool of the
        # same call then neither counts it twice (caps, loops) nor audits it twice
        self._released: OrderedDict[str, tuple[str, Any]] = OrderedDict()

    @classmethod
    def open(cls, agent: str, config: Config | Path | None = None, *,
             session: str = "") -> Self:
        """A guard for agent `agent` (an id in the config's `agents`), from a config (a
        `Config`, a file, or lictor's embedded defaults plus $LICTOR_CONFIG)."""
        if not isinstance(config, Config):
            config = load_config(config)
        agents = {a.id: a for a in config.agents}
        if agent not in agents:
            raise ConfigError(f"agent {agent!r} is not in the config's agents "
                              f"({', '.join(agents) or 'none'})")
        found = agents[agent]
        principals = [Principal(a.id, a.team, a.tenant) for a in config.agents]
        parts = open_components(config, principals, [a.id for a in config.agents if a.disabled])
        try:
            switches = KillSwitches(config.data_dir / "kill_switches.sqlite3")
        except Exception:
            parts.close()
            raise
        return cls(parts, Principal(found.id, found.team, found.tenant), session,
                   switches=switches, disabled=found.disabled)

    def for_session(self, session: str) -> Guard:
        """The same agent in another session (its own taint, loops and budgets), sharing
        this guard's engine and stores; close only the guard that was opened."""
        return Guard(self._parts, self.principal, session, switches=self._switches,
                     disabled=self._disabled, lock=self._lock)

    def close(self) -> None:
        """A last signed checkpoint over what this guard wrote, then close the stores."""
        with self._lock:
            try:
                self._parts.checkpointer.checkpoint()
            except Exception:
                log.exception("final audit checkpoint failed")
            self._parts.close()
            if self._switches is not None:
                self._switches.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------

    def _append(self, stage: str, rid: str, *entries: dict[str, Any]) -> None:
        """Durable before the action goes on; `Blocked` if the store cannot write."""
        try:
            self._parts.audit.append_many(entries)
        except AuditWriteError:
            log.exception("audit append failed")
            raise Blocked(stage, _refusal(AUDIT_UNAVAILABLE_RULE, "lictor cannot write its "
                          "audit log; actions are refused until it can"), rid) from None
        try:
            self._parts.checkpointer.after_append()
        except Exception:  # the records are durable; the next checkpoint covers them
            log.exception("audit checkpoint failed")

    def _follow_kill_switch(self) -> None:
        """An operator's stop (the admin API of `lictor serve` on this data dir) reaches
        this agent at its next check, and so does a revive."""
        if self._switches is not None:
            stopped = self._disabled or self.principal.agent_id in self._switches.stopped()
            self.engine.limits.state.set_switch(kill_key(self.principal.agent_id), stopped)

    def _stopped(self, decision: Decision) -> Decision:
        """`decision`, refused when the agent is stopped (model requests check it already;
        tool calls and results a guarded agent makes by itself are checked here)."""
        stop: list[Finding] = []
        self.engine.limits.check_kill_switch(self.principal, stop)
        if not stop:
            return decision
        return replace(decision, verdict=Verdict.BLOCK, findings=stop + decision.findings)

    def _refuse_invalid(self, stage: str, rid: str, err: ProtocolError) -> Blocked:
        self._append(stage, rid, audit_entries.refused(
            kind="rejected_request", request_id=rid, principal=self.principal,
            status=err.status, code=err.code, reason=err.message,
            policy_hash=self.engine.policy.content_hash))
        return Blocked(stage, _refusal(INVALID_INPUT_RULE, err.message), rid)

    # -- checks --------------------------------------------------------------------

    def check_input(self, messages: list[dict[str, Any]], *, model: str = "in-process",
                    tools: list[dict[str, Any]] | None = None) -> CheckedInput:
        """Messages (OpenAI chat format) before a model call: personal data masked,
        injections refused, forbidden offered tools taken out. Raises `Blocked`."""
        rid = "req_" + secrets.token_hex(12)
        body: dict[str, Any] = {"model": model, "messages": messages}
        if tools is not None:
            body["tools"] = tools
        with self._lock:
            self._follow_kill_switch()
            try:
                action = openai_chat.parse_request(body)
            except ProtocolError as err:
                raise self._refuse_invalid("input", rid, err) from None
            outcome = self.engine.evaluate_request(self.principal, action, self.session)
            decision = outcome.decision
            record = audit_entries.model_request(
                request_id=rid, principal=self.principal, action=action, backend=BACKEND,
                stream=False, decision=decision, audit_texts=outcome.audit_texts)
            keys = self._parts.subject_keys
            if keys is not None and outcome.vault:
                record["originals"] = keys.seal(
                    f"session:{self.principal.agent_id}/{self.session}",
                    json.dumps(outcome.vault.originals()).encode())
            self._append("input", rid, record)
        if decision.verdict in STOPS:
            raise Blocked("input", decision, rid)
        sent = openai_chat.apply_request(body, action, outcome.masked_texts, decision)
        return CheckedInput(sent["messages"], decision, rid, outcome.vault, sent.get("tools"))

    def check_output(self, text: str | None = None,
                     tool_calls: list[dict[str, Any]] | None = None,
                     checked: CheckedInput | None = None) -> CheckedOutput:
        """A model's answer (text, OpenAI-format tool calls) before the agent acts on it:
        every proposed call authorized, placeholders of `checked` restored. Calls a policy
        removes are dropped with a note; a blocking rule raises `Blocked`."""
        rid = checked.request_id if checked is not None else "req_" + secrets.token_hex(12)
        vault = checked.vault if checked is not None else PlaceholderVault()
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        resp = {"choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if tool_calls else "stop"}]}
        with self._lock:
            try:
                action = openai_chat.parse_response(resp)
            except ProtocolError as err:
                raise self._refuse_invalid("output", rid, err) from None
            decision = self.engine.evaluate_response(self.principal, action, self.session)
            events: list[dict[str, Any]] = []
            if decision.approvals:
                settlement = self.approvals.open(self.principal, rid, action.tool_calls,
                                                 decision, restore=vault.restore)
                events = settlement.events
                decision = self.approvals.close(decision, settlement)
            self._append("output", rid, *events, audit_entries.model_response(
                request_id=rid, principal=self.principal, decision=decision,
                choices=audit_entries.redacted_choices(openai_chat.produced(resp),
                                                       self.engine.redact),
                usage=None))
        if decision.verdict in STOPS:
            raise Blocked("output", decision, rid)
        out = openai_chat.apply_response(resp, decision, vault)["choices"][0]["message"]
        released = out.get("tool_calls") or []
        with self._lock:
            for call in released:
                self._released[call["id"]] = _released_key(call)
                while len(self._released) > MAX_RELEASED:
                    self._released.popitem(last=False)
        return CheckedOutput(out.get("content"), released, decision, rid)

    def authorize_tool(self, name: str, arguments: dict[str, Any] | str,
                       call_id: str = "") -> Decision:
        """One tool call the agent is about to run (Cedar, the catalog's argument schema,
        argument rules, code patterns, caps and loops, taint, approvals). Raises `Blocked`
        unless it may run now."""
        rid = "req_" + secrets.token_hex(12)
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = openai_chat.tool_call_from_wire(
            {"id": call_id or rid, "function": {"name": name, "arguments": raw}}, rid)
        action = Action(ActionKind.TOOL_CALL, Direction.RESPONSE, PROTOCOL, tool_calls=[call])
        with self._lock:
            self._follow_kill_switch()
            released = self._released.pop(call_id, None) if call_id else None
            if released is not None and released == _released_key(
                    {"function": {"name": name, "arguments": raw}}):
                decision = self._stopped(Decision(Verdict.ALLOW, [],
                                                  self.engine.policy.content_hash))
                if decision.verdict is Verdict.ALLOW:
                    return decision  # authorized and audited with the model's answer
            decision = self._stopped(
                self.engine.evaluate_response(self.principal, action, self.session))
            events: list[dict[str, Any]] = []
            if decision.approvals:
                settlement = self.approvals.open(self.principal, rid, [call], decision,
                                                 restore=lambda s: s)
                events = settlement.events
                decision = self.approvals.close(decision, settlement)
            decision = self._whole_call(decision, call)
            self._append("tool_call", rid, *events, audit_entries.tool_call(
                request_id=rid, principal=self.principal, protocol=PROTOCOL, tool=name,
                decision=decision, arguments=self.engine.redact(raw)))
        if decision.verdict in STOPS:
            raise Blocked("tool_call", decision, rid)
        return decision

    def _whole_call(self, decision: Decision, call: ToolCall) -> Decision:
        """In-process the call is the whole action: a call a policy removes is refused, and
        one still waiting for people is held (its finding names the approval id)."""
        if call.call_id not in decision.removed_tool_calls:
            return decision
        findings = [self._refused(f, call.name) for f in decision.findings]
        return Decision(combine(findings), findings, decision.policy_hash,
                        decision.removed_tool_calls, [], [], decision.call_notes)

    def _refused(self, found: Finding, tool: str) -> Finding:
        if found.shadow or found.verdict is not Verdict.FLAG:
            return found
        if found.rule_id == HELD_RULE:
            return replace(found, verdict=Verdict.APPROVE)
        if found.rule_id.startswith("cedar:") and found.evidence == tool:
            return replace(found, verdict=Verdict.BLOCK, message=f"agent "
                           f"{self.principal.agent_id!r} may not call tool {tool!r} "
                           f"(policy {found.rule_id.removeprefix('cedar:')})")
        return found

    def check_tool_result(self, name: str, result: str) -> Decision:
        """What a tool returned, before the model reads it: untrusted text (trust `tool`).
        Content that addresses the AI taints the session; a blocking rule raises `Blocked`
        (the result is withheld)."""
        rid = "req_" + secrets.token_hex(12)
        action = Action(ActionKind.TOOL_RESULT, Direction.REQUEST, PROTOCOL,
                        segments=[Segment(result, Trust.TOOL, ("result",))])
        with self._lock:
            self._follow_kill_switch()
            outcome = self.engine.evaluate_request(self.principal, action, self.session)
            decision = self._stopped(outcome.decision)
            stops = decision.verdict in STOPS
            self._append("tool_result", rid, audit_entries.tool_result(
                request_id=rid, principal=self.principal, protocol=PROTOCOL, tool=name,
                decision=decision, withheld=stops,
                content=[{"trust": "tool", "path": ["result"], "text": t}
                         for t in outcome.audit_texts]))
        if stops:
            raise Blocked("tool_result", decision, rid)
        return decision

    @property
    def tainted(self) -> bool:
        """Whether this session read untrusted content that tried to steer it (ASI01)."""
        return self.engine.limits.tainted(self.principal, self.session)
