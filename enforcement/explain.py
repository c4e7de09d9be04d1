"""`lictor rules explain`: one request or response judged by the real engine, told so a
reviewer can follow it: the verdict, every finding with the file and line of its rule,
which finding decided and why, and what was masked or removed.

Everything printed passes through the engine's `redact`: an explanation is shown to
people and pasted into tickets, so it holds no raw personal data or secrets.
"""

from __future__ import annotations

from collections.abc import Callable

from lictor.enforcement.engine import INTERNAL_ERROR_RULE, Engine
from lictor.enforcement.pii.placeholder_vault import PLACEHOLDER_RE
from lictor.enforcement.types import (
    SEVERITY,
    STOPS,
    Action,
    Decision,
    Direction,
    Finding,
    Principal,
    Verdict,
)
from lictor.rules.policy import Policy

ORDER = " < ".join(v.value for v in sorted(SEVERITY, key=SEVERITY.__getitem__))
VERBS = {Verdict.BLOCK: "blocks", Verdict.APPROVE: "holds it for a person's approval",
         Verdict.MASK: "masks", Verdict.FLAG: "flags", Verdict.ALLOW: "allows"}
STOPPED = {Verdict.BLOCK: "blocked", Verdict.APPROVE: "held for approval"}
CEDAR_DEFAULTS = {"no policy permits it": "Cedar's default deny (no permit applies)",
                  "policy evaluation error": "a Cedar evaluation error (lictor fails closed)"}


def rule_sources(policy: Policy) -> dict[str, str]:
    """Rule id (YAML rules) or `cedar:<name>` (Cedar policies) -> pack/file:line."""
    groups = (policy.pattern_rules, policy.pii_rules, policy.invisible_rules,
              policy.limit_rules, policy.pin_rules, policy.argument_rules,
              policy.agent_action_rules)
    out = {rule.spec.rule_id: rule.spec.source for group in groups for rule in group}
    out.update({f"cedar:{p.name}": p.source for p in policy.cedar.policies.values()})
    return out


def _names(rule_id: str) -> list[str]:
    """The ids a finding names: a Cedar denial can name several forbids at once."""
    if rule_id.startswith("cedar:"):
        return [f"cedar:{name}" for name in rule_id.removeprefix("cedar:").split(", ")]
    return [rule_id]


class _Teller:
    """Turns findings into words, with sources, and redacted."""

    def __init__(self, policy: Policy, redact: Callable[[str], str]) -> None:
        self.sources = rule_sources(policy)
        self.on_deny = {p.name: p.on_deny for p in policy.cedar.policies.values()}
        self.redact = redact

    def who(self, finding: Finding) -> str:
        """`rule x (pack/file.yaml:3)` or `Cedar policy y (pack/file.cedar:9)`."""
        parts = []
        for name in _names(finding.rule_id):
            if name == INTERNAL_ERROR_RULE:
                parts.append(f"{name} (lictor itself: a check failed, so it fails closed)")
            elif name.removeprefix("cedar:") in CEDAR_DEFAULTS:
                parts.append(CEDAR_DEFAULTS[name.removeprefix("cedar:")])
            elif name.startswith("cedar:"):
                where = self.sources.get(name, "source unknown")
                parts.append(f"Cedar policy {name.removeprefix('cedar:')} ({where})")
            else:
                parts.append(f"rule {name} ({self.sources.get(name, 'source unknown')})")
        return " and ".join(parts)

    def finding(self, n: int, f: Finding, decider: Finding | None, verdict: Verdict) -> list[str]:
        mode = " (shadow mode)" if f.shadow else ""
        owasp = f"  [{', '.join(f.owasp)}]" if f.owasp else ""
        lines = [f"  {n}. {f.verdict.value}{mode}: {self.who(f)}{owasp}",
                 f"     {self.redact(f.message)}"]
        if f.evidence:
            lines.append(f"     evidence: {self.redact(f.evidence)}")
        if f.shadow:
            lines.append("     -> shadow mode: reported, but it does not count")
        elif f is decider:
            lines.append(f"     -> decides the verdict: {verdict.value} is the most severe "
                         f"enforced verdict ({ORDER})")
        elif f.verdict == verdict:
            lines.append(f"     -> does not change the verdict: also {verdict.value}, and an "
                         "earlier finding already decides")
        else:
            lines.append(f"     -> does not change the verdict: {f.verdict.value} is below "
                         f"{verdict.value}")
        return lines


def _decider(decision: Decision) -> Finding | None:
    if decision.verdict in STOPS:
        return decision.blocking_finding
    return next((f for f in decision.findings
                 if not f.shadow and f.verdict == decision.verdict), None)


def _summary(teller: _Teller, decision: Decision, decider: Finding | None) -> str:
    verdict = decision.verdict.value
    shadow = sum(f.shadow for f in decision.findings)
    if decider is None:
        if not shadow:
            return f"verdict {verdict}: no rule or policy fired"
        return (f"verdict {verdict}: no enforced finding; {shadow} shadow-mode "
                f"finding{'s are' if shadow > 1 else ' is'} reported only")
    others = len(decision.findings) - 1
    rest = ("no other finding" if not others else
            f"{others} other finding{'s do' if others > 1 else ' does'} not change it")
    if shadow:
        rest += f" ({shadow} in shadow mode)"
    return f"verdict {verdict}: {teller.who(decider)} {VERBS[decider.verdict]}; {rest}"


def _masked(teller: _Teller, policy: Policy, decision: Decision, action: Action,
            masked_texts: list[str]) -> list[str]:
    pii_ids = {r.spec.rule_id for r in policy.pii_rules}
    masked = [f for f in decision.findings
              if f.rule_id in pii_ids and f.verdict is Verdict.MASK and not f.shadow]
    if not masked:
        return []
    entities = ", ".join(dict.fromkeys(f.evidence for f in masked))
    typed = {m.group(0) for s in action.segments for m in PLACEHOLDER_RE.finditer(s.text)}
    shown = sorted({m.group(0) for t in masked_texts for m in PLACEHOLDER_RE.finditer(t)} - typed)
    rules = " and ".join(dict.fromkeys(teller.who(f) for f in masked))
    line = f"masked PII: {entities}, by {rules}"
    if shown:
        line += f"; the model sees {', '.join(shown)} instead"
    if decision.verdict in STOPS:
        line += f" (nothing is sent: the request is {STOPPED[decision.verdict]})"
    return [line]


def _removed(teller: _Teller, decision: Decision, action: Action) -> list[str]:
    def denial(tool: str) -> tuple[str, bool]:
        """Who forbids the tool, and whether its policy refuses the whole response."""
        f = next((f for f in decision.findings
                  if f.rule_id.startswith("cedar:") and f.evidence == tool), None)
        if f is None:
            return "a policy", False
        names = [n.removeprefix("cedar:") for n in _names(f.rule_id)]
        return teller.who(f), any(teller.on_deny.get(n) == "block" for n in names)

    lines = [f"removed offered tool {teller.redact(tool)}: forbidden by {denial(tool)[0]}; "
             "it is taken out of the offer before the request goes upstream"
             for tool in decision.removed_offered_tools]
    calls = {c.call_id: c.name for c in action.tool_calls}
    for call_id in decision.removed_tool_calls:
        name = calls.get(call_id, "?")
        who, refuses = denial(name)
        effect = ('@on_deny("block"): the whole response is refused' if refuses else
                  "the call is dropped and the agent reads why; the rest of the answer goes on")
        lines.append(f"removed tool call {teller.redact(name)} (id {call_id}): forbidden by "
                     f"{who}; {effect}")
    return lines


def explanation(policy: Policy, action: Action, decision: Decision,
                redact: Callable[[str], str], masked_texts: list[str] | None = None) -> list[str]:
    """The lines that explain `decision` on `action`; `masked_texts` (requests) are the texts
    as they go upstream, placeholders in place of PII."""
    teller = _Teller(policy, redact)
    decider = _decider(decision)
    trust = ", ".join(dict.fromkeys(s.trust.value for s in action.segments))
    if action.direction is Direction.REQUEST:
        head = (f"request to model {action.model!r}: {len(action.segments)} text(s) "
                f"({trust or 'none'}), {len(action.offered_tools)} offered tool(s)")
    else:
        names = ", ".join(teller.redact(c.name) for c in action.tool_calls)
        head = (f"response: {len(action.segments)} text(s), {len(action.tool_calls)} proposed "
                f"tool call(s){f' ({names})' if names else ''}")
    lines = [head, f"verdict: {decision.verdict.value}", ""]
    if decision.findings:
        lines.append(f"findings ({len(decision.findings)}):")
        for n, f in enumerate(decision.findings, 1):
            lines.extend(teller.finding(n, f, decider, decision.verdict))
    else:
        lines.append("findings: none")
    extra = _masked(teller, policy, decision, action, masked_texts or []) + _removed(
        teller, decision, action)
    return [*lines, *(["", *extra] if extra else []), "", _summary(teller, decision, decider)]


def explain_action(engine: Engine, principal: Principal, action: Action) -> list[str]:
    """Judge one action with `engine`, as live traffic would be, and explain the result."""
    if action.direction is Direction.REQUEST:
        outcome = engine.evaluate_request(principal, action)
        return explanation(engine.policy, action, outcome.decision, engine.redact,
                           outcome.masked_texts)
    decision = engine.evaluate_response(principal, action)
    return explanation(engine.policy, action, decision, engine.redact)
