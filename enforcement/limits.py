"""Limits over time: rates, token budgets, tool-call loops and caps, and the kill switch.

OWASP ASI08 (cascading failures) and ASI10 (rogue agents). Counters live in a
`StateStore`, so several replicas can share them; a finding for a reached limit carries
`retry_after`, which the data planes answer with their protocol's 429.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from lictor.enforcement.session_state import StateStore
from lictor.enforcement.types import Finding, Principal, ToolCall, Verdict, matches_tool
from lictor.rules.policy import LimitRule

KILL_SWITCH_RULE = "lictor.kill-switch"


TAINT_WINDOW_S = 3600
NO_BUDGET = 2**53  # what `budget_left` reads when no budget applies


def kill_key(agent_id: str) -> str:
    return f"kill:{agent_id}"


def _taint_key(principal: Principal, session: str) -> str:
    return f"taint:{principal.agent_id}/{session}"


class Limits:
    __slots__ = ("_clock", "_rules", "state")

    def __init__(
        self, rules: tuple[LimitRule, ...], state: StateStore, clock: Callable[[], float]
    ) -> None:
        self._rules = rules
        self.state = state
        self._clock = clock

    def _key(self, rule: LimitRule, principal: Principal, session: str) -> str:
        value = {"agent": principal.agent_id, "team": principal.team,
                 "tenant": principal.tenant}.get(rule.scope)
        if value is None:  # session: one agent's session ids never mix with another's
            value = f"{principal.agent_id}/{session}"
        return f"{rule.spec.rule_id}:{rule.scope}:{value}"

    @staticmethod
    def _finding(rule: LimitRule, what: str, retry_after: float) -> Finding:
        spec = rule.spec
        return Finding(spec.rule_id, Verdict(spec.verdict), spec.owasp, spec.severity,
                       f"{spec.description} ({what})", shadow=spec.shadow,
                       retry_after=max(1.0, retry_after))

    def check_kill_switch(self, principal: Principal, out: list[Finding]) -> None:
        """A stopped agent does nothing: every action of it is refused (ASI10)."""
        if self.state.switch(kill_key(principal.agent_id)):
            out.append(Finding(KILL_SWITCH_RULE, Verdict.BLOCK, ("ASI10",), "critical",
                               f"agent {principal.agent_id!r} is stopped by its kill switch"))

    def check_request(self, principal: Principal, session: str, out: list[Finding]) -> None:
        """Kill switch, request rates (this request counts), and budgets already spent."""
        self.check_kill_switch(principal, out)
        now = self._clock()
        for rule in self._rules:
            key = self._key(rule, principal, session)
            if rule.kind == "rate":
                total, left = self.state.add(key, 1, rule.window_s, now)
                if total > rule.limit:
                    out.append(self._finding(
                        rule, f"limit {rule.limit} requests per {rule.window_s} s", left))
            elif rule.kind == "budget":
                used, left = self.state.peek(key, rule.window_s, now)
                if used >= rule.limit:
                    out.append(self._finding(
                        rule, f"budget {rule.limit} tokens per {rule.window_s} s", left))

    def taint(self, principal: Principal, session: str) -> None:
        """Untrusted content tried to steer the agent: start each taint window."""
        now = self._clock()
        self.state.add(_taint_key(principal, session), 1, TAINT_WINDOW_S, now)
        for rule in self._rules:
            if rule.kind == "tainted":
                self.state.add(self._key(rule, principal, session), 1, rule.window_s, now)

    def tainted(self, principal: Principal, session: str) -> bool:
        """Whether the session read steering content within the last hour (Cedar's
        `context.tainted`)."""
        count, _ = self.state.peek(_taint_key(principal, session), TAINT_WINDOW_S, self._clock())
        return count > 0

    def budget_left(self, principal: Principal, session: str) -> int:
        """Tokens left in the tightest budget that applies (Cedar's `context.budget_left`)."""
        now, left = self._clock(), NO_BUDGET
        for rule in self._rules:
            if rule.kind == "budget":
                used, _ = self.state.peek(self._key(rule, principal, session), rule.window_s, now)
                left = min(left, max(0, rule.limit - int(used)))
        return left

    def record_usage(self, principal: Principal, session: str, tokens: int) -> None:
        """Charge the tokens a response used to every budget that counts them."""
        if tokens <= 0:
            return
        now = self._clock()
        for rule in self._rules:
            if rule.kind == "budget":
                self.state.add(self._key(rule, principal, session), tokens, rule.window_s, now)

    def check_tool_calls(
        self, principal: Principal, session: str, calls: list[ToolCall], out: list[Finding]
    ) -> None:
        """Loops (the same call again and again) and caps on calls to named tools."""
        if not calls:
            return
        now = self._clock()
        for rule in self._rules:
            key = self._key(rule, principal, session)
            if rule.kind == "repeat":
                for call in calls:
                    digest = hashlib.sha256(
                        f"{call.name}\0{json.dumps(call.arguments, sort_keys=True)}".encode()
                    ).hexdigest()[:16]
                    total, left = self.state.add(f"{key}:{digest}", 1, rule.window_s, now)
                    if total >= rule.limit:
                        out.append(self._finding(
                            rule, f"{call.name} proposed {int(total)} times with the same "
                            f"arguments within {rule.window_s} s", left))
            elif rule.kind == "tainted":
                tainted, left = self.state.peek(key, rule.window_s, now)
                risky = [c.name for c in calls if matches_tool(c.name, rule.tools)]
                if tainted and risky:
                    spec = rule.spec
                    out.append(Finding(
                        spec.rule_id, Verdict(spec.verdict), spec.owasp, spec.severity,
                        f"{spec.description} ({', '.join(risky)}; the session read content "
                        f"that tried to steer the agent)", evidence=", ".join(risky),
                        shadow=spec.shadow))
            elif rule.kind == "calls":
                count = sum(matches_tool(c.name, rule.tools) for c in calls)
                if count:
                    total, left = self.state.add(key, count, rule.window_s, now)
                    if total > rule.limit:
                        out.append(self._finding(
                            rule, f"{int(total)} calls to {', '.join(rule.tools)} within "
                            f"{rule.window_s} s, cap {rule.limit}", left))
