"""What the in-process framework adapters need from a guard: the refusal it raises, and
the four checks they call. The guard itself (`lictor.proxy.guard.Guard`) opens the engine
and the audit store; adapters only translate framework objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Decision, Finding, Verdict


@dataclass(slots=True)
class CheckedInput:
    """Messages judged before a model call: `messages` as the model may see them
    (personal data as placeholders), and the vault that puts the real values back."""

    messages: list[dict[str, Any]]
    decision: Decision
    request_id: str
    vault: PlaceholderVault = field(default_factory=PlaceholderVault)
    tools: list[dict[str, Any]] | None = None  # the offer, forbidden tools taken out

    def restore(self, text: str) -> str:
        return self.vault.restore(text)


@dataclass(slots=True)
class CheckedOutput:
    """A model answer judged: placeholders restored, forbidden tool calls taken out (with
    a note in `text` naming the policy)."""

    text: str | None
    tool_calls: list[dict[str, Any]]
    decision: Decision
    request_id: str


class Blocked(Exception):
    """lictor refused something in-process: names the rules and says why, readably."""

    def __init__(self, stage: str, decision: Decision, request_id: str,
                 reason: str = "") -> None:
        self.stage = stage  # input | output | tool_call | tool_result
        self.decision = decision
        self.request_id = request_id
        found = decision.blocking_finding
        self.finding: Finding | None = found
        self.rule_ids = [f.rule_id for f in decision.findings
                         if f.verdict in (Verdict.BLOCK, Verdict.APPROVE) and not f.shadow]
        if found is None and not reason:
            reason = "refused by policy (no rule named)"
        what = {"input": "input", "output": "model output", "tool_call": "tool call",
                "tool_result": "tool result"}.get(stage, stage)
        verb = ("holds this " + what + " for human approval"
                if found is not None and found.verdict is Verdict.APPROVE
                else "blocked this " + what)
        detail = reason or (f"rule {found.rule_id}: {found.message}" if found else "")
        self.message = f"lictor {verb}: {detail} (lictor request {request_id})"
        super().__init__(self.message)

    def tool_message(self, tool: str) -> str:
        """What a model reads instead of a tool's output when lictor stopped it."""
        if self.stage == "tool_result":
            return f"[lictor] The result of tool `{tool}` was withheld: {self.message}"
        return f"[lictor] The tool call `{tool}` was not run: {self.message}"


class GuardApi(Protocol):
    """The checks an in-process adapter calls; each raises `Blocked` to stop."""

    def check_input(self, messages: list[dict[str, Any]], *, model: str = ...,
                    tools: list[dict[str, Any]] | None = None) -> CheckedInput: ...

    def authorize_tool(self, name: str, arguments: dict[str, Any] | str,
                       call_id: str = "") -> Decision: ...

    def check_tool_result(self, name: str, result: str) -> Decision: ...

    def check_output(self, text: str | None = None,
                     tool_calls: list[dict[str, Any]] | None = None,
                     checked: CheckedInput | None = None) -> CheckedOutput: ...
