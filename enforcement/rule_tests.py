"""Runs rule-test cases through the real engine and says, per case, what differed.

The same engine evaluates live traffic, so a passing case means the rule behaves the same
way through every data plane.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from lictor.enforcement.engine import Engine
from lictor.enforcement.session_state import MemoryStateStore
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Decision,
    Direction,
    HostedTool,
    Principal,
    Segment,
    ToolCall,
    ToolDefinition,
    Trust,
)
from lictor.rules.policy import Policy
from lictor.rules.test_cases import Case, LocatedCase


@dataclass(slots=True, frozen=True)
class CaseResult:
    name: str
    source: str
    passed: bool
    verdict: str
    rules: tuple[str, ...]
    problem: str = ""


def _action(case: Case) -> Action:
    segments = [Segment(t.text, Trust(t.trust), ("texts", i), tool=t.tool)
                for i, t in enumerate(case.texts)]
    calls = [
        ToolCall(c.name, c.arguments, call_id=f"case-{k}", raw_arguments=json.dumps(c.arguments))
        for k, c in enumerate(case.tool_calls)
    ]
    if case.direction == "request":
        definitions = {name: ToolDefinition(d.description, d.parameters)
                       for name, d in case.tool_definitions.items()}
        return Action(ActionKind.MODEL_REQUEST, Direction.REQUEST, "rule-test", segments=segments,
                      model=case.model, offered_tools=[*case.offered_tools, *definitions],
                      tool_definitions=definitions,
                      hosted_tools=[HostedTool(t, ("tools", i))
                                    for i, t in enumerate(case.hosted_tools)])
    return Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, "rule-test", segments=segments,
                  model=case.model, tool_calls=calls)


def _decide(engine: Engine, case: Case) -> Decision:
    principal = Principal(case.agent)
    action = _action(case)
    if case.direction == "request":
        return engine.evaluate_request(principal, action).decision
    return engine.evaluate_response(principal, action)


def run_cases(policy: Policy, cases: Sequence[LocatedCase]) -> list[CaseResult]:
    # The agents a case knows: its own, and every peer a hand-off rule declares (in a real
    # deployment, these are the configured, authenticated agents).
    agents = {c.case.agent for c in cases} | {
        peer for rule in policy.agent_action_rules if rule.kind == "handoffs"
        for peers in rule.config.peers.values() for peer in peers}
    engine = Engine(policy, [Principal(agent) for agent in sorted(agents)])
    results = []
    for located in cases:
        case = located.case
        engine.limits.state = MemoryStateStore()  # each case starts with fresh counters
        if case.before:
            earlier = [Segment(t.text, Trust(t.trust), tool=t.tool) for t in case.before]
            engine.evaluate_request(Principal(case.agent), Action(
                ActionKind.MODEL_REQUEST, Direction.REQUEST, "rule-test", segments=earlier,
                model=case.model))
        for _ in range(case.times - 1):
            _decide(engine, case)
        decision = _decide(engine, case)
        fired = tuple(dict.fromkeys(f.rule_id for f in decision.findings))
        problems = []
        if decision.verdict.value != case.expect.verdict:
            problems.append(f"verdict {decision.verdict.value}, expected {case.expect.verdict}")
        missing = [r for r in case.expect.rules if r not in fired]
        if missing:
            problems.append(f"did not fire: {', '.join(missing)}")
        unwanted = [r for r in case.expect.absent if r in fired]
        if unwanted:
            problems.append(f"fired but must not: {', '.join(unwanted)}")
        results.append(CaseResult(case.name, located.source, not problems,
                                  decision.verdict.value, fired, "; ".join(problems)))
    return results
