"""Tool calls held for people, on the data plane: ask, wait (or not), release or refuse.

After the engine says a proposed call needs approval, each such call is bound to its exact
action (agent, tool, real arguments). An approved, unused approval of that action releases
it; otherwise an approval is asked for and, in `hold` mode, the request waits for people.
A call still without approval is taken out with a note naming the approval id, so the
agent can tell the user and ask again. An approval id the agent presents
(`x-lictor-approval`) that was given for another action is refused outright.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lictor.enforcement.approvals import APPROVED, DENIED, PENDING, Approval, ApprovalDesk
from lictor.enforcement.types import (
    ApprovalNeed,
    Decision,
    Finding,
    Principal,
    ToolCall,
    Verdict,
    combine,
)
from lictor.proxy import audit_entries

APPROVAL_HEADER = "x-lictor-approval"  # approval ids the agent presents, comma-separated
MISMATCH_RULE = "lictor.approval-mismatch"
GRANTED_RULE = "lictor.approval-granted"
HELD_RULE = "lictor.approval-held"


@dataclass(slots=True)
class HeldCall:
    call: ToolCall
    needs: list[ApprovalNeed]
    binding: str
    approval: Approval | None = None  # the one used (released) or asked for
    released: bool = False


@dataclass(slots=True)
class Settlement:
    """The calls needing approval in one answer, as far as they are decided."""

    principal: Principal
    request_id: str
    calls: list[HeldCall] = field(default_factory=list)
    refusals: list[Finding] = field(default_factory=list)  # presented ids that do not fit
    events: list[dict[str, Any]] = field(default_factory=list)  # audit entries

    @property
    def headers(self) -> dict[str, str]:
        asked = [c.approval for c in self.calls if c.approval is not None]
        if not asked:
            return {}
        return {"x-lictor-approval-id": ",".join(a.id for a in asked),
                "x-lictor-approval-status": ",".join(a.status for a in asked)}


class ApprovalFlow:
    def __init__(self, desk: ApprovalDesk, policy_hash: Callable[[], str]) -> None:
        self.desk = desk
        self._policy_hash = policy_hash

    def open(self, principal: Principal, request_id: str, calls: list[ToolCall],
             decision: Decision, *, restore: Callable[[str], str],
             presented: str = "") -> Settlement:
        """Bind each held call, use approvals already given, ask for the rest."""
        out = Settlement(principal, request_id)
        if any(f.verdict is Verdict.BLOCK and not f.shadow for f in decision.findings):
            return out  # refused anyway: nobody is asked
        by_call: dict[str, list[ApprovalNeed]] = {}
        for need in decision.approvals:
            by_call.setdefault(need.call_id, []).append(need)
        for call in calls:
            needs = by_call.get(call.call_id)
            if needs:
                binding = self.desk.binding(principal, call.name, _real_arguments(call, restore))
                out.calls.append(HeldCall(call, needs, binding))
        self._check_presented(out, [p.strip() for p in presented.split(",") if p.strip()])
        if out.refusals:  # the answer is refused whole: nothing is used or asked for
            return out
        for held in out.calls:
            used = self.desk.take(held.binding, request_id)
            if used is not None:
                held.approval, held.released = used, True
                out.events.append(self._event("approval_used", out, used))
                continue
            held.approval, new = self.desk.ask(held.binding, principal, held.needs, request_id)
            if new:
                out.events.append(self._event("approval_requested", out, held.approval))
        return out

    def _check_presented(self, out: Settlement, presented: list[str]) -> None:
        bindings = {c.binding for c in out.calls}
        for approval_id in presented:
            approval = self.desk.get(approval_id)
            if approval is not None and approval.binding in bindings and approval.status in (
                    APPROVED, PENDING):
                continue
            why = ("is not known" if approval is None
                   else f"was given for another action ({approval.agent}, {approval.tool}, "
                   "other arguments)" if approval.binding not in bindings
                   else f"is {approval.status}")
            out.refusals.append(Finding(
                MISMATCH_RULE, Verdict.BLOCK, ("ASI09",), "high",
                f"approval {approval_id} {why}: an approval covers one exact action once",
                evidence=approval_id))
            if approval is not None:
                out.events.append(self._event("approval_refused", out, approval))

    async def settle(self, principal: Principal, request_id: str, calls: list[ToolCall],
                     decision: Decision, *, restore: Callable[[str], str], presented: str,
                     audit: Callable[..., object]) -> tuple[Decision, Settlement]:
        """`open`, then `audit` what was asked for before anyone can see it or wait on it
        (it raises to stop), then `hold` and `close`. The events left in the settlement
        (approvals used after waiting) are the caller's to audit with its answer."""
        out = self.open(principal, request_id, calls, decision, restore=restore,
                        presented=presented)
        audit(*out.events)
        out.events.clear()
        await self.hold(out)
        return self.close(decision, out), out

    async def hold(self, out: Settlement) -> None:
        """Wait for people on calls whose rules say `hold`, each up to its timeout."""
        for held in out.calls:
            approval = held.approval
            if held.released or approval is None or approval.mode != "hold":
                continue
            timeout = max(n.timeout_s for n in held.needs)
            decided = await self.desk.wait(approval, timeout)
            if decided.status == APPROVED:
                used = self.desk.take(held.binding, out.request_id)
                if used is not None:
                    held.approval, held.released = used, True
                    out.events.append(self._event("approval_used", out, used))
                    continue
            held.approval = decided

    def close(self, decision: Decision, out: Settlement) -> Decision:
        """The decision with approved calls released and the others taken out, each with
        a finding and a note the agent can read."""
        findings = [f for f in decision.findings
                    if not (f.verdict is Verdict.APPROVE and _held_rule(f, out))]
        removed = list(decision.removed_tool_calls)
        notes = dict(decision.call_notes)
        for held in out.calls:
            approval = held.approval
            if approval is None:  # not asked for: a presented approval was refused
                removed.append(held.call.call_id)
                continue
            if held.released:
                people = ", ".join(f"{v.by} ({v.team or 'no team'}): {v.reason}"
                                   for v in approval.votes if v.approve)
                findings.append(Finding(GRANTED_RULE, Verdict.FLAG, ("ASI09",), "medium",
                                        f"{approval.summary}: approved by {people}; "
                                        f"approval {approval.id}", evidence=approval.id))
                continue
            removed.append(held.call.call_id)
            if approval.status == DENIED:
                vote = approval.votes[-1]
                note = (f"was denied by {vote.by}: {vote.reason} (approval {approval.id})")
            else:
                waiting = ", ".join(f"{n} from {t or 'any team'}"
                                    for t, n in approval.missing().items())
                note = (f"needs approval {approval.id} ({approval.summary}; rule "
                        f"{', '.join(approval.rules)}), which is {approval.status}; waiting "
                        f"for {waiting or 'nobody'}. Ask again once it is approved")
            notes[held.call.call_id] = note
            findings.append(Finding(HELD_RULE, Verdict.FLAG, ("ASI09",), "medium",
                                    f"{held.call.name} {note}", evidence=approval.id))
        findings.extend(out.refusals)
        return Decision(combine(findings), findings, decision.policy_hash, removed,
                        decision.removed_offered_tools, [], notes)

    def _event(self, kind: str, out: Settlement, approval: Approval) -> dict[str, Any]:
        return audit_entries.approval_event(
            kind=kind, request_id=out.request_id, agent=out.principal,
            approval=approval.as_record(), policy_hash=self._policy_hash())


def _held_rule(finding: Finding, out: Settlement) -> bool:
    return any(finding.rule_id == n.rule_id for held in out.calls for n in held.needs)


def _real_arguments(call: ToolCall, restore: Callable[[str], str]) -> Any:
    """The arguments the agent will act on: placeholders put back to their real values."""
    try:
        return json.loads(restore(call.raw_arguments)) if call.raw_arguments else {}
    except ValueError:
        return restore(call.raw_arguments)
