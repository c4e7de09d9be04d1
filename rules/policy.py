"""The compiled, immutable policy snapshot that the engine evaluates against.

Built once per load by `rules.loader`; swapped whole on reload; its content hash goes
into every audit record so a decision can be traced to the exact rule files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lictor.rules.cedar_policies import CedarBundle
from lictor.rules.tool_catalog import CatalogSnapshot


@dataclass(slots=True, frozen=True)
class RuleSpec:
    """One rule, flattened for the hot path (no pydantic objects on it)."""

    rule_id: str
    description: str
    owasp: tuple[str, ...]
    severity: str
    verdict: str  # block | flag | mask
    shadow: bool
    directions: frozenset[str]  # {"request"}, {"response"} or both
    trust: frozenset[str]
    source: str  # pack/file:line, for explanations
    where: frozenset[str] = frozenset({"text"})  # text and/or tool_arguments
    tools: tuple[str, ...] = ("*",)  # globs over tool names, for tool_arguments
    sensitive: bool = False  # matches are redacted from audit records
    taints: bool = False  # firing on a request taints the session


@dataclass(slots=True, frozen=True)
class PatternRule:
    spec: RuleSpec
    patterns: tuple[str, ...]
    case_sensitive: bool


@dataclass(slots=True, frozen=True)
class PiiRule:
    spec: RuleSpec
    entities: tuple[str, ...]
    min_score: float


@dataclass(slots=True, frozen=True)
class InvisibleRule:
    spec: RuleSpec
    kinds: frozenset[str]  # zero_width | bidi | tag


@dataclass(slots=True, frozen=True)
class LimitRule:
    """A counter over a time window: `rate` (requests), `budget` (tokens) or `repeat`
    (identical tool calls), kept per agent, team, tenant or session."""

    spec: RuleSpec
    kind: str  # rate | budget | repeat | calls | tainted
    limit: int
    window_s: int
    scope: str
    tools: tuple[str, ...] = ("*",)  # for `calls` and `tainted`: which tools


@dataclass(slots=True, frozen=True)
class ArgumentRule:
    """Constraints on named tools' arguments; the schema model is kept as validated."""

    spec: RuleSpec
    tools: tuple[str, ...]
    constraints: dict[str, Any]  # argument -> lictor.rules.schema.ArgumentConstraint


@dataclass(slots=True, frozen=True)
class AgentActionRule:
    """Approval thresholds (`needs_approval`) or hand-off peers (`handoffs`), as validated."""

    spec: RuleSpec
    kind: str  # approval | handoffs
    config: Any  # lictor.rules.schema.NeedsApproval or Handoffs


@dataclass(slots=True, frozen=True)
class PinRule:
    spec: RuleSpec
    pins: dict[str, str]  # tool name -> "sha256:<hex>" of its definition


@dataclass(slots=True, frozen=True)
class Policy:
    pattern_rules: tuple[PatternRule, ...]
    pii_rules: tuple[PiiRule, ...]
    invisible_rules: tuple[InvisibleRule, ...]
    limit_rules: tuple[LimitRule, ...]
    pin_rules: tuple[PinRule, ...]
    argument_rules: tuple[ArgumentRule, ...]
    agent_action_rules: tuple[AgentActionRule, ...]
    cedar: CedarBundle
    catalog: CatalogSnapshot
    context_attributes: frozenset[str]  # what Cedar policies read of `context`
    content_hash: str  # sha256 over every source file's path and bytes
    sources: tuple[str, ...]

    @property
    def version(self) -> str:
        """Short form of the content hash, for banners and error messages."""
        return self.content_hash[:12]
