"""The rule-file format, as pydantic models: what compliance teams write in `*.yaml`.

Unknown fields are errors (a typo must not silently disable a rule).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lictor.rules.regex_syntax import RegexError, compile_re2, explain
from lictor.rules.vocabulary import PII_ENTITIES

TrustLabel = Literal["system", "user", "assistant", "tool", "retrieved"]
TRUST_LABELS: tuple[TrustLabel, ...] = ("system", "user", "assistant", "tool", "retrieved")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Applies(Strict):
    """Where a rule looks: direction, trust labels, message text and/or tool-call arguments
    (of the tools named by `tools`, shell-style globs)."""

    direction: Literal["request", "response", "both"] = "request"
    trust: tuple[TrustLabel, ...] = TRUST_LABELS
    where: tuple[Literal["text", "tool_arguments"], ...] = ("text",)
    tools: tuple[str, ...] = ("*",)

    @model_validator(mode="after")
    def _tools_need_arguments(self) -> Applies:
        if self.tools != ("*",) and "tool_arguments" not in self.where:
            raise ValueError("`tools` narrows `where: [tool_arguments]`; add it to `where`")
        return self


InvisibleKind = Literal["zero_width", "bidi", "tag"]
Scope = Literal["agent", "team", "tenant", "session"]
DURATION = r"^[1-9][0-9]*[smhd]$"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    return int(text[:-1]) * DURATION_UNITS[text[-1]]


class _Window(Strict):
    per: str = Field(pattern=DURATION, description="e.g. 30s, 1m, 24h, 7d")
    scope: Scope = "agent"


class RateLimit(_Window):
    """At most `requests` model requests per window; the next one is refused (429)."""

    requests: int = Field(gt=0)


class TokenBudget(_Window):
    """At most `tokens` (as the provider reports usage) per window."""

    tokens: int = Field(gt=0)


class RepeatLimit(_Window):
    """The same tool call (name and arguments) proposed this many times is a loop."""

    same_tool_call: int = Field(ge=2)
    scope: Scope = "session"


class CallCap(_Window):
    """At most `calls` proposed calls to the matching tools per window."""

    calls: int = Field(gt=0)
    tools: tuple[str, ...] = ("*",)
    scope: Scope = "session"


class TaintedTools(Strict):
    """While the session was tainted within `per`, proposed calls to these tools match."""

    tools: tuple[str, ...] = Field(min_length=1)
    per: str = Field(default="1h", pattern=DURATION)


class Threshold(Strict):
    argument: str = Field(min_length=1)
    above: float


class ApprovalTerms(Strict):
    """Who must approve and how the agent waits: `hold` keeps its request open up to
    `timeout`; `pending` answers at once with the approval id, to ask again later."""

    team: str = ""  # approvers must belong to this team (admin keys' `team`); "" = any admin
    approvers: int = Field(default=1, ge=1, le=10)  # distinct people
    mode: Literal["hold", "pending"] = "pending"
    timeout: str = Field(default="60s", pattern=DURATION)


class NeedsApproval(ApprovalTerms):
    """Calls to these tools (above the threshold, if any) wait for a human. `summary` says
    what will happen, from the call's arguments: "refund {amount} {currency} for {order_id}"."""

    tools: tuple[str, ...] = Field(min_length=1)
    when: Threshold | None = None
    summary: str = Field(min_length=1)


class Handoffs(Strict):
    """Agent-to-agent hand-offs made as tool calls (the OpenAI Agents SDK names them
    `transfer_to_<agent>`): allowed only to an agent's declared peers."""

    prefix: str = Field(default="transfer_to_", min_length=1)
    peers: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # agent -> may hand to


class ArgumentConstraint(Strict):
    """What one argument of a tool call may be; checked on every call the model proposes."""

    type: Literal["string", "number", "integer", "boolean", "array", "object"] | None = None
    enum: tuple[str | int | float | bool, ...] | None = None
    pattern: str | None = None  # RE2, must match the whole string
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    required: bool = False

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_re2(value)
            except RegexError as exc:
                raise ValueError(f"not a valid RE2 regular expression: {explain(exc)}") from None
        return value


class ArgumentRules(Strict):
    """Constraints on the arguments of the tools named by `tools` (globs)."""

    tools: tuple[str, ...] = Field(min_length=1)
    constraints: dict[str, ArgumentConstraint] = Field(min_length=1)


class Match(Strict):
    """What a rule matches (exactly one kind): regular expressions, PII entities, or
    invisible characters hidden in the text (zero-width, bidi controls, Unicode tags)."""

    patterns: tuple[str, ...] = ()
    case_sensitive: bool = False
    pii: tuple[str, ...] = ()
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    invisible: tuple[InvisibleKind, ...] = ()
    rate: RateLimit | None = None
    budget: TokenBudget | None = None
    repeat: RepeatLimit | None = None
    calls: CallCap | None = None
    arguments: ArgumentRules | None = None
    tainted_tools: TaintedTools | None = None
    needs_approval: NeedsApproval | None = None
    handoffs: Handoffs | None = None
    # tool name -> "sha256:<hex>" of its definition (see `lictor rules pin`)
    pinned_tools: dict[str, str] = Field(default_factory=dict)

    @field_validator("pinned_tools")
    @classmethod
    def _pins_are_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                raise ValueError(f"pin of {name!r} must be 'sha256:' and 64 hex digits; "
                                 "`lictor rules pin REQUEST.json` prints them")
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, pattern in enumerate(value):
            if pattern.lstrip().startswith("(?") and re.match(r"\(\?[aiLmsux]+\)", pattern):
                raise ValueError(
                    f"pattern {i + 1}: global inline flags like '(?i)' are not allowed; "
                    "patterns are case-insensitive unless `case_sensitive: true`, and a "
                    "scoped group such as '(?i:...)' works for parts of a pattern"
                )
            if "(?P<" in pattern:
                raise ValueError(
                    f"pattern {i + 1}: named groups '(?P<name>...)' are reserved for the "
                    "scanner; use a plain '(...)' or '(?:...)' group"
                )
            try:
                compile_re2(pattern)
            except RegexError as exc:
                raise ValueError(
                    f"pattern {i + 1} is not a valid RE2 regular expression: {explain(exc)}"
                ) from None
        return value

    @field_validator("pii")
    @classmethod
    def _pii_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in value if e not in PII_ENTITIES]
        if unknown:
            raise ValueError(
                f"unknown PII entity {', '.join(unknown)}; known: {', '.join(PII_ENTITIES)}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Match:
        kinds = (self.patterns, self.pii, self.invisible, self.rate, self.budget, self.repeat,
                 self.calls, self.arguments, self.pinned_tools, self.tainted_tools,
                 self.needs_approval, self.handoffs)
        if sum(map(bool, kinds)) != 1:
            raise ValueError(
                "a rule matches exactly one of `patterns`, `pii`, `invisible`, `rate`, "
                "`budget`, `repeat`, `calls`, `arguments`, `pinned_tools`, `tainted_tools`, "
                "`needs_approval` or `handoffs`"
            )
        return self


class Rule(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=120)
    description: str = Field(min_length=1)
    owasp: tuple[str, ...] = ()
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    applies: Applies = Applies()
    match: Match
    verdict: Literal["block", "flag", "mask", "approve"]
    mode: Literal["enforce", "shadow"] = "enforce"
    # `sensitive`: what this rule matches is itself secret (keys, tokens); it is redacted
    # from audit records and from the finding's evidence.
    sensitive: bool = False
    limits: str = ""  # what the rule does not catch, stated for the rules catalog
    # When it fires on a request, the agent's session is tainted (see `tainted_tools`).
    taints_session: bool = False

    @model_validator(mode="after")
    def _verdict_fits_match(self) -> Rule:
        if self.verdict == "mask" and not self.match.pii:
            raise ValueError("verdict `mask` needs `match.pii`: only PII can be masked")
        if (self.verdict == "approve") != bool(self.match.needs_approval):
            raise ValueError("verdict `approve` goes with `match.needs_approval`, and only there")
        return self


class Coverage(Strict):
    """How fully a pack covers one risk, and why: written by people, shown in the catalog."""

    level: Literal["full", "partial", "none"]
    why: str = Field(min_length=1)


class CatalogTool(Strict):
    """A tool lictor knows: its risk and owner (Cedar sees both) and its argument schema,
    which every proposed call is checked against (rule `catalog.<tool>.arguments`)."""

    description: str = ""
    risk: Literal["low", "medium", "high", "critical"] = "medium"
    owner: str = ""  # the team that answers for the tool
    amount_argument: str = "amount"  # the argument Cedar sees as `context.amount`
    arguments: dict[str, ArgumentConstraint] = Field(default_factory=dict)


class CatalogTeam(Strict):
    tenant: str = ""


class CatalogAgent(Strict):
    """An agent's place in the organization; its key stays in the config, not here."""

    team: str = ""
    tenant: str = ""


class CatalogMcpServer(Strict):
    """An MCP server as policies see it; how to reach it (URL, credentials) is config."""

    description: str = ""
    risk: Literal["low", "medium", "high", "critical"] = "medium"
    owner: str = ""


class Catalog(Strict):
    """Who and what exists: Cedar's entities (teams, agents, tools, MCP servers)."""

    teams: dict[str, CatalogTeam] = Field(default_factory=dict)
    agents: dict[str, CatalogAgent] = Field(default_factory=dict)
    tools: dict[str, CatalogTool] = Field(default_factory=dict)
    mcp_servers: dict[str, CatalogMcpServer] = Field(default_factory=dict)


class RuleFile(Strict):
    """One YAML rule file: rules, the catalog, and a pack's coverage notes by risk id."""

    rules: tuple[Rule, ...] = ()
    catalog: Catalog = Catalog()
    coverage: dict[str, Coverage] = Field(default_factory=dict)
