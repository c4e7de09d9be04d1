"""Actions that need more than a policy: a human's approval, or a declared peer.

OWASP ASI09 Human-Agent Trust Exploitation: a state-changing call above a threshold waits
for a person, who is shown a deterministic summary of what will happen (written by the
rule, filled from the call's arguments, never by the model). OWASP ASI07 Insecure
Inter-Agent Communication: a hand-off to another agent goes only to a configured,
authenticated agent that the caller declares as a peer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lictor.enforcement.types import (
    ApprovalNeed,
    Finding,
    Principal,
    ToolCall,
    Verdict,
    matches_tool,
)
from lictor.rules.policy import AgentActionRule
from lictor.rules.schema import duration_seconds


class _Arguments(dict[str, str]):
    """Template values: arguments as short strings; a missing one reads as <missing>."""

    def __missing__(self, key: str) -> str:
        return "<missing>"


def summary(template: str, arguments: dict[str, Any]) -> str:
    values = _Arguments({k: str(v)[:80] for k, v in arguments.items()})
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError):  # a malformed template is shown as is
        return template


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


class AgentActions:
    __slots__ = ("_agents", "_peers", "_redact", "_rules")

    def __init__(self, rules: tuple[AgentActionRule, ...], agents: set[str],
                 redact: Callable[[str], str]) -> None:
        self._rules = rules
        self._agents = agents  # configured, authenticated agent ids
        self._redact = redact  # summaries land in audit records
        # Peers are a fact of the deployment: declared in any hand-off rule, they hold for all.
        self._peers: dict[str, set[str]] = {}
        for rule in rules:
            if rule.kind == "handoffs":
                for agent, peers in rule.config.peers.items():
                    self._peers.setdefault(agent, set()).update(peers)

    def check(self, principal: Principal, calls: list[ToolCall], out: list[Finding],
              needs: list[ApprovalNeed]) -> None:
        for rule in self._rules:
            spec = rule.spec
            for call in calls:
                message = (self._approval(rule.config, call) if rule.kind == "approval"
                           else self._handoff(rule.config, principal, call))
                if not message:
                    continue
                message = self._redact(message)
                out.append(Finding(spec.rule_id, Verdict(spec.verdict), spec.owasp,
                                   spec.severity, message, evidence=call.name,
                                   shadow=spec.shadow))
                if rule.kind == "approval" and not spec.shadow:
                    terms = rule.config
                    needs.append(ApprovalNeed(
                        call.call_id, call.name, spec.rule_id, message, terms.team,
                        terms.approvers, terms.mode, duration_seconds(terms.timeout)))

    @staticmethod
    def _approval(config: Any, call: ToolCall) -> str:
        if not matches_tool(call.name, config.tools):
            return ""
        when = config.when
        if when is not None:
            if when.argument not in call.arguments:
                return ""
            value = _number(call.arguments[when.argument])
            # a value that is not a number cannot be shown to be under the threshold
            if value is not None and value <= when.above:
                return ""
        return f"{call.name}: {summary(config.summary, call.arguments)}"

    def _handoff(self, config: Any, principal: Principal, call: ToolCall) -> str:
        if not call.name.startswith(config.prefix):
            return ""
        target = call.name[len(config.prefix):]
        if target not in self._agents:
            return f"hand-off to {target!r}, which is not a configured agent"
        if target not in self._peers.get(principal.agent_id, ()):
            return f"hand-off from {principal.agent_id!r} to {target!r}, not a declared peer"
        return ""
