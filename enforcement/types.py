"""Core hot-path types shared by adapters, the engine and audit.

Plain slotted dataclasses and enums: adapters build them from wire traffic, the engine
reads them, and audit serializes them. Pydantic stays at the edges (config, rule files).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any


class Verdict(StrEnum):
    """What happens to an action; ordered by severity (see `SEVERITY`)."""

    ALLOW = "allow"
    FLAG = "flag"  # allow, and alert
    MASK = "mask"  # allow after transforms (placeholders) are applied
    APPROVE = "approve"  # needs a human
    BLOCK = "block"


SEVERITY: dict[Verdict, int] = {
    Verdict.ALLOW: 0,
    Verdict.FLAG: 1,
    Verdict.MASK: 2,
    Verdict.APPROVE: 3,
    Verdict.BLOCK: 4,
}


# Verdicts after which the action does not go on: `approve` holds it for a human (the data
# plane asks for an approval; without one, the action is refused: fail closed).
STOPS = frozenset({Verdict.BLOCK, Verdict.APPROVE})


class ActionKind(StrEnum):
    MODEL_REQUEST = "model_request"
    MODEL_RESPONSE = "model_response"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    MCP_CALL = "mcp_call"
    HTTP_REQUEST = "http_request"


class Trust(StrEnum):
    """Where a piece of text came from; rules choose which labels they apply to."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    RETRIEVED = "retrieved"


class Direction(StrEnum):
    REQUEST = "request"
    RESPONSE = "response"


@dataclass(slots=True, frozen=True)
class Principal:
    """Who acts, taken from the agent's own credential, never from a free header."""

    agent_id: str
    team: str = ""
    tenant: str = ""

    def as_record(self) -> dict[str, str]:
        return {"agent": self.agent_id, "team": self.team, "tenant": self.tenant}


@dataclass(slots=True)
class Segment:
    """One piece of text an action carries, with its trust label.

    `path` locates it in the wire message (adapter-defined), so a transform can be put back;
    `tool` says the text is a tool call's arguments, which rules can target by tool name.
    """

    text: str
    trust: Trust
    path: tuple[str | int, ...] = ()
    tool: str = ""  # set when the text is the arguments of a call to this tool


@dataclass(slots=True)
class ToolCall:
    """A tool call the model proposes (or an agent makes): name and parsed arguments."""

    name: str
    arguments: dict[str, Any]
    call_id: str = ""
    raw_arguments: str = ""


@dataclass(slots=True, frozen=True)
class ToolDefinition:
    """What the model reads about a tool it is offered (pinned by digest: ASI04)."""

    description: str
    parameters: Any


@dataclass(slots=True, frozen=True)
class HostedTool:
    """A tool the provider runs server-side (web search, a remote MCP server, code
    execution), offered in a request: authorized as Cedar's `Tool::"hosted:<type>"`."""

    type: str  # as the provider names it: "mcp", "web_search_preview", "web_search_20250305"
    where: tuple[str, int]  # its place in the request body: ("tools", 3), ("mcp_servers", 0)
    host: str = ""  # a remote MCP server's host; "" for other tools

    @property
    def name(self) -> str:
        return f"hosted:{self.type}"


def matches_tool(name: str, globs: Iterable[str]) -> bool:
    """Whether a tool name matches one of a rule's shell-style globs."""
    return any(fnmatchcase(name, glob) for glob in globs)


@dataclass(slots=True)
class Action:
    """What is about to happen, in protocol-neutral form."""

    kind: ActionKind
    direction: Direction
    protocol: str
    segments: list[Segment] = field(default_factory=list)
    model: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    offered_tools: list[str] = field(default_factory=list)
    tool_definitions: dict[str, ToolDefinition] = field(default_factory=dict)  # offered tools
    hosted_tools: list[HostedTool] = field(default_factory=list)  # provider-run tools offered


# A Finding as a plain tuple (rule_id, verdict, owasp, severity, message, evidence, shadow,
# retry_after): what caches keep, as the garbage collector stops tracking exact tuples of
# strings and numbers, and walks every dataclass instance on each collection.
FindingRow = tuple[str, str, tuple[str, ...], str, str, str, bool, float | None]


@dataclass(slots=True, frozen=True)
class Finding:
    """One rule that matched: which, why, and where (never the raw matched value)."""

    rule_id: str
    verdict: Verdict
    owasp: tuple[str, ...] = ()
    severity: str = "medium"
    message: str = ""
    evidence: str = ""
    shadow: bool = False
    retry_after: float | None = None  # set when a limit was reached: answer 429

    def as_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule_id,
            "verdict": self.verdict.value,
            "owasp": list(self.owasp),
            "severity": self.severity,
        }
        if self.message:
            out["message"] = self.message
        if self.evidence:
            out["evidence"] = self.evidence
        if self.shadow:
            out["shadow"] = True
        return out

    def as_row(self) -> FindingRow:
        return (self.rule_id, self.verdict.value, self.owasp, self.severity, self.message,
                self.evidence, self.shadow, self.retry_after)

    @classmethod
    def from_row(cls, row: FindingRow) -> Finding:
        return cls(row[0], Verdict(row[1]), *row[2:])


@dataclass(slots=True, frozen=True)
class ApprovalNeed:
    """A proposed tool call that a rule or policy holds until people approve it."""

    call_id: str
    tool: str
    rule_id: str
    summary: str  # what will happen, in audit form (PII redacted)
    team: str  # approvers must be in this team; "" = any admin
    approvers: int  # distinct people
    mode: str  # hold (the request waits) | pending (answered at once with the id)
    timeout_s: float  # how long a held request waits


@dataclass(slots=True)
class Decision:
    """The combined outcome for one action.

    `removed_tool_calls` holds the ids of proposed tool calls a policy forbids (each is
    replaced by a refusal the agent can read); `removed_offered_tools` names tools taken
    out of a request's offer before it goes upstream, `removed_hosted_tools` the indexes
    (in the action's `hosted_tools`) of provider-run tools taken out.
    """

    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    policy_hash: str = ""
    removed_tool_calls: list[str] = field(default_factory=list)
    removed_offered_tools: list[str] = field(default_factory=list)
    approvals: list[ApprovalNeed] = field(default_factory=list)  # calls waiting for people
    call_notes: dict[str, str] = field(default_factory=dict)  # removed call id -> why
    removed_hosted_tools: list[int] = field(default_factory=list)

    @property
    def blocking_finding(self) -> Finding | None:
        """The finding that stops the action: a block first, else one that needs a human."""
        stopping = [f for f in self.findings if f.verdict in STOPS and not f.shadow]
        stopping.sort(key=lambda f: f.verdict is not Verdict.BLOCK)
        return stopping[0] if stopping else None


def combine(findings: list[Finding]) -> Verdict:
    """The most severe verdict of the enforced (non-shadow) findings."""
    worst = Verdict.ALLOW
    for f in findings:
        if not f.shadow and SEVERITY[f.verdict] > SEVERITY[worst]:
            worst = f.verdict
    return worst
