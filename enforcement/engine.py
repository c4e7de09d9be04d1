"""The decision engine: one `Decision` per action from PII, pattern and Cedar checks.

Built once per policy load (everything compiled then); `evaluate_*` do no I/O. Any
exception inside a check becomes a `block` naming the failure: the engine fails closed.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

from lictor.enforcement import young_objects
from lictor.enforcement.action_authorization import ActionAuthorization
from lictor.enforcement.agent_actions import AgentActions
from lictor.enforcement.authorization import AuthzResult
from lictor.enforcement.byte_regex import ByteRegex
from lictor.enforcement.limits import Limits
from lictor.enforcement.normalize import normalize, tool_argument_text
from lictor.enforcement.pattern_scanner import PatternScanner
from lictor.enforcement.pii import PiiMatch, PiiScanner, PlaceholderVault, VaultDelta
from lictor.enforcement.segment_cache import SegmentCache
from lictor.enforcement.session_state import MemoryStateStore, StateStore
from lictor.enforcement.tool_arguments import ArgumentChecker
from lictor.enforcement.tool_pins import definition_digest
from lictor.enforcement.types import (
    Action,
    ActionKind,
    ApprovalNeed,
    Decision,
    Finding,
    FindingRow,
    Principal,
    Segment,
    Trust,
    Verdict,
    combine,
)
from lictor.rules.policy import PiiRule, Policy, RuleSpec
from lictor.rules.regex_syntax import compile_re2
from lictor.rules.vocabulary import PII_ENTITIES

log = logging.getLogger("lictor.engine")

INTERNAL_ERROR_RULE = "lictor.internal-error"
BOUNDARY_CHARS = 200  # of each side of a message boundary, scanned joined
_UNTRUSTED = frozenset({"user", "tool", "retrieved"})
_READ_BY_MODEL = frozenset({"tool", "retrieved"})  # in a response: a provider-run tool's result


# One request segment judged after one exact conversation prefix, as the history keeps it:
# (node naming that prefix and segment, masked text, audit text, findings as rows, and what
# masking added to the request's vault: VaultDelta's entries and reserved). A plain tuple of
# strings, numbers and such tuples, which the garbage collector stops tracking; it would
# walk a dataclass per entry, and the history holds tens of thousands, on each collection.
_Outcome = tuple[int, str, str, tuple[FindingRow, ...], tuple[tuple[str, str, bool], ...],
                 tuple[str, ...]]
_NODE: Final = 0
_MASKED: Final = 1
_AUDIT: Final = 2
_FINDINGS: Final = 3
_DELTA_ENTRIES: Final = 4
_DELTA_RESERVED: Final = 5
_MASKED_OF = itemgetter(_MASKED)  # C-level, for a history's worth of outcomes
_AUDIT_OF = itemgetter(_AUDIT)

NO_DELTA = VaultDelta((), ())
# Trust labels as plain strings, for cache keys: an enum member is a tracked object, and a
# key tuple holding one would stay tracked too.
_TRUST_TEXT: dict[str, str] = {trust: trust.value for trust in Trust}
_VERDICTS: dict[str, Verdict] = {verdict.value: verdict for verdict in Verdict}  # no EnumMeta call
_new_match = tuple.__new__  # PiiMatch from (entity, start, end, score), without its Python frame


@dataclass(slots=True, frozen=True)
class _Resume:
    """Where the previous request of a conversation ended: the vault and findings there, and
    what its message boundaries found, so a resent history's boundaries are not rescanned."""

    vault: PlaceholderVault  # a snapshot: never handed out, copied on use
    findings: tuple[FindingRow, ...]
    boundaries: tuple[FindingRow, ...]  # every boundary's findings, in order, before dedup
    tail: str | None  # the last masked text if a boundary after it is scanned, else None


@dataclass(slots=True)
class RequestOutcome:
    """A request's decision plus what it takes to apply it and restore the answer."""

    decision: Decision
    masked_texts: list[str]  # one per action segment, placeholders in place of PII
    audit_texts: list[str]  # the same, with every PII value redacted (what audit keeps)
    vault: PlaceholderVault = field(default_factory=PlaceholderVault)


def _finding(spec: RuleSpec, message: str, evidence: str = "") -> Finding:
    return Finding(
        rule_id=spec.rule_id,
        verdict=_VERDICTS[spec.verdict],
        owasp=spec.owasp,
        severity=spec.severity,
        message=message,
        evidence=evidence,
        shadow=spec.shadow,
    )


def _internal_error(where: str, exc: Exception) -> Decision:
    log.exception("check failed in %s", where)
    return Decision(
        verdict=Verdict.BLOCK,
        findings=[
            Finding(
                rule_id=INTERNAL_ERROR_RULE,
                verdict=Verdict.BLOCK,
                severity="high",
                message=f"a check failed while evaluating the {where} ({type(exc).__name__}); "
                "lictor fails closed",
            )
        ],
    )


class Engine:
    __slots__ = (
        "_actions",
        "_agent_actions",
        "_arguments",
        "_history",
        "_invisible_rules",
        "_nodes",
        "_pattern_cache",
        "_patterns",
        "_pii",
        "_pii_cache",
        "_pii_rules",
        "_resume",
        "_secrets",
        "_tainting",
        "limits",
        "policy",
    )

    def __init__(
        self,
        policy: Policy,
        principals: list[Principal],
        state: StateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        # The state outlives policy reloads: the gateway passes the same store to every Engine.
        self.limits = Limits(policy.limit_rules,
                             state if state is not None else MemoryStateStore(), clock)
        self._patterns = PatternScanner(policy.pattern_rules)
        self._pii_rules: tuple[PiiRule, ...] = policy.pii_rules
        self._invisible_rules = policy.invisible_rules
        self._arguments = ArgumentChecker(policy.argument_rules)
        self._agent_actions = AgentActions(policy.agent_action_rules,
                                           {p.agent_id for p in principals}, self.redact)
        specs = [r.spec for r in policy.pattern_rules] + [r.spec for r in policy.invisible_rules]
        self._tainting = frozenset(s.rule_id for s in specs if s.taints)
        # What `sensitive` rules match (keys, tokens) never reaches audit: one RE2 regex.
        secrets = [
            p if r.case_sensitive else f"(?i:{p})"
            for r in policy.pattern_rules if r.spec.sensitive for p in r.patterns
        ]
        secrets_pattern = "|".join(f"(?:{s})" for s in secrets)
        self._secrets = ((ByteRegex(secrets_pattern), compile_re2(secrets_pattern)) if secrets
                         else None)
        # Every known entity is scanned, ruled or not: audit never keeps raw personal data.
        min_score = min((r.min_score for r in policy.pii_rules), default=0.5)
        self._pii = PiiScanner(PII_ENTITIES, min_score=min_score)
        self._actions = ActionAuthorization(policy, principals, self.limits, clock, self.redact)
        # plain tuples in the caches, untracked by the GC (see `_Outcome`)
        self._pii_cache: SegmentCache[tuple[tuple[str, int, int, float], ...]] = SegmentCache()
        self._pattern_cache: SegmentCache[tuple[FindingRow, ...]] = SegmentCache()
        # Agents resend their history: a segment after the same prefix is judged once.
        self._history: SegmentCache[_Outcome] = SegmentCache()
        self._resume: SegmentCache[_Resume] = SegmentCache(max_entries=4096)
        self._nodes = itertools.count(1)

    # -- requests -----------------------------------------------------------------

    def evaluate_request(
        self, principal: Principal, action: Action, session: str = ""
    ) -> RequestOutcome:
        vault = PlaceholderVault()
        masked: list[str] = []
        audit: list[str] = []
        try:
            findings: list[Finding] = []
            if action.kind is ActionKind.MODEL_REQUEST:
                # Other kinds (an MCP tool list or result) are content coming back for a
                # request the data plane already counted; no model is invoked for them.
                self.limits.check_request(principal, session, findings)
                self._actions.model(principal, action, findings)
            vault, node, rows, resume, resume_at = self._request_segments(
                action, vault, findings, masked, audit)
            boundaries, tail = self._scan_boundaries(action, masked, findings, resume,
                                                     resume_at)
            if node and self._resume.get(node) is None:  # charged for the text it keeps
                self._resume.put(node, _Resume(vault.snapshot(), rows, boundaries, tail),
                                 1 + len(tail or ""))
            self._check_pins(action, findings)
            removed_tools = self._actions.offered(principal, session, action.offered_tools,
                                                  findings)
            removed_hosted = self._actions.hosted(principal, session, action.hosted_tools,
                                                  findings)
            if any(f.rule_id in self._tainting and not f.shadow for f in findings):
                self.limits.taint(principal, session)
        except Exception as exc:
            return RequestOutcome(_internal_error("request", exc), [], [], vault)
        decision = Decision(
            verdict=combine(findings),
            findings=findings,
            policy_hash=self.policy.content_hash,
            removed_offered_tools=removed_tools,
            removed_hosted_tools=removed_hosted,
        )
        young_objects.collect_if_due()  # part of the check's time, a little each time
        return RequestOutcome(decision, masked, audit, vault)

    def _check_pins(self, action: Action, out: list[Finding]) -> None:
        """A pinned tool offered with another definition than the one reviewed (ASI04)."""
        for rule in self.policy.pin_rules:
            for name, definition in action.tool_definitions.items():
                pinned = rule.pins.get(name)
                if pinned is None:
                    continue
                digest = definition_digest(name, definition)
                if pinned != digest:
                    out.append(_finding(
                        rule.spec, f"the definition of tool {name!r} changed since it was "
                        f"pinned ({pinned[:19]}..., now {digest[:19]}...)", name))

    def _request_segments(
        self,
        action: Action,
        vault: PlaceholderVault,
        findings: list[Finding],
        masked: list[str],
        audit: list[str],
    ) -> tuple[PlaceholderVault, int, tuple[FindingRow, ...], _Resume | None, int]:
        """Judge each segment, reusing the outcome of the same segment after the same
        prefix and resuming from where the conversation's previous request ended, so a
        resent history costs a lookup per segment. Returns the request's vault, the node
        it ended at and its findings (for a `_Resume` there), and where it resumed from."""
        history = self._history
        # The longest prefix judged before: `history.get` inlined, as a resent history is
        # walked on every request (an entry getting old is still moved to the back).
        table, old, trust_text = history.table, history.refresh_below(), _TRUST_TEXT
        node, known = 0, []
        for segment in action.segments:
            key = (node, trust_text[segment.trust], segment.tool, segment.text)
            entry = table.get(key)
            if entry is None:
                break
            if entry[2] < old:
                history.get(key)
                old = history.refresh_below()
            outcome = entry[0]
            known.append(outcome)
            node = outcome[_NODE]
        resume_at, resume = -1, None
        for i in range(len(known) - 1, -1, -1):  # usually where the previous request ended
            resume = self._resume.get(known[i][_NODE])
            if resume is not None:
                resume_at = i
                break
        rows = list(resume.findings) if resume is not None else []
        seen = set(rows)
        if resume is not None:
            vault = resume.vault.snapshot()
        masked.extend(map(_MASKED_OF, known[: resume_at + 1]))
        audit.extend(map(_AUDIT_OF, known[: resume_at + 1]))
        node = known[resume_at][_NODE] if resume_at >= 0 else 0
        for i in range(resume_at + 1, len(action.segments)):
            segment = action.segments[i]
            if i < len(known):
                outcome = known[i]
                vault.apply(VaultDelta(outcome[_DELTA_ENTRIES], outcome[_DELTA_RESERVED]))
            else:
                outcome = self._judge_segment(segment, vault)
                history.put((node, _TRUST_TEXT[segment.trust], segment.tool, segment.text),
                            outcome, len(segment.text))
            for row in outcome[_FINDINGS]:
                if row not in seen:
                    seen.add(row)
                    rows.append(row)
            masked.append(outcome[_MASKED])
            audit.append(outcome[_AUDIT])
            node = outcome[_NODE]
        findings.extend(f for f in map(Finding.from_row, rows) if f not in findings)
        return vault, node, tuple(rows), resume, resume_at

    def _judge_segment(self, segment: Segment, vault: PlaceholderVault) -> _Outcome:
        found: list[Finding] = []
        upstream, audit_text, delta = self._mask_pii(segment, vault, found)
        rows = (*(f.as_row() for f in found),
                *self._scan_rows(upstream, "request", segment.trust.value, segment.tool))
        return next(self._nodes), upstream, audit_text, rows, delta.entries, delta.reserved

    def _mask_pii(
        self, segment: Segment, vault: PlaceholderVault, out: list[Finding]
    ) -> tuple[str, str, VaultDelta]:
        """(text to send upstream, text to audit, vault delta) for one request segment."""
        text, trust = segment.text, segment.trust.value
        matches = [_new_match(PiiMatch, m) for m in self._pii_cache.get_or_compute(
            text, None, lambda t: tuple((m.entity, m.start, m.end, m.score)
                                        for m in self._pii.scan(t)))]
        if not matches:
            # placeholder-shaped text typed by the sender is still reserved in the vault
            masked, delta = vault.mask_with_delta(text, []) if "<" in text else (text, NO_DELTA)
            return masked, self.redact_secrets(masked), delta
        to_mask = []
        reported: set[tuple[str, str]] = set()  # (rule, entity): one finding each
        for m in matches:
            for rule in self._pii_rules:
                spec = rule.spec
                if (
                    m.entity in rule.entities
                    and m.score >= rule.min_score
                    and "request" in spec.directions
                    and trust in spec.trust
                ):
                    if spec.verdict == "mask" and not spec.shadow:
                        to_mask.append(m)
                    if (spec.rule_id, m.entity) not in reported:
                        reported.add((spec.rule_id, m.entity))
                        out.append(_finding(spec, f"{m.entity} in {trust} text", m.entity))
                    if not spec.shadow:  # a trial in shadow mode never switches enforcement off
                        break
        upstream, delta = (vault.mask_with_delta(text, to_mask) if to_mask or "<" in text
                           else (text, NO_DELTA))
        if len(to_mask) == len(matches):
            return upstream, self.redact_secrets(upstream), delta
        return upstream, self.redact(upstream), delta

    def redact(self, text: str) -> str:
        """Every PII value replaced by its entity name: the form audit records keep.

        Not cached: what it sees (masked requests, model output) rarely repeats.
        """
        matches = self._pii.scan(text)
        if matches:
            parts, pos = [], 0
            for m in matches:
                parts.append(text[pos : m.start])
                parts.append(f"<{m.entity}>")
                pos = m.end
            parts.append(text[pos:])
            text = "".join(parts)
        return self.redact_secrets(text)

    def redact_secrets(self, text: str) -> str:
        """What `sensitive` rules match (keys, tokens) replaced by <SECRET>."""
        if self._secrets is None:
            return text
        finder, replacer = self._secrets
        if finder.search(text.encode()) is None:  # the common case, without re2's str API
            return text
        return str(replacer.sub("<SECRET>", text))

    def scan_text(self, text: str, direction: str, trust: str, tool: str = "") -> list[Finding]:
        """Pattern rules over one whole segment, cached: history repeats on every call.

        `tool` names the tool when `text` is a tool call's arguments."""
        return [Finding.from_row(row) for row in self._scan_rows(text, direction, trust, tool)]

    def _scan_rows(self, text: str, direction: str, trust: str,
                   tool: str) -> tuple[FindingRow, ...]:
        """`scan_text` as the cache keeps it (rows: see `_Outcome`)."""
        return self._pattern_cache.get_or_compute(
            text, (direction, trust, tool),
            lambda t: tuple(f.as_row() for f in self.scan_window(t, direction, trust, tool)))

    def scan_window(self, text: str, direction: str, trust: str, tool: str = "") -> list[Finding]:
        """Pattern and invisible-character rules over every view of a text; not cached
        (also used for streamed windows, seen once)."""
        norm = normalize(tool_argument_text(text) if tool else text)
        found: list[Finding] = []
        seen: set[str] = set()
        for kind, view in norm.views:
            for hit in self._patterns.scan(view, direction, trust, tool):
                if hit.spec.rule_id in seen:
                    continue
                seen.add(hit.spec.rule_id)
                # the evidence lands in audit records: PII and secrets in it are redacted
                evidence = ("<SECRET>" if hit.spec.sensitive
                            else self.redact(view[hit.start : hit.end][:80]))
                if kind != "text":
                    evidence = f"{evidence} (found in {kind})"
                found.append(_finding(hit.spec, hit.spec.description, evidence))
        if norm.invisible and not tool:
            for rule in self._invisible_rules:
                spec = rule.spec
                hidden = rule.kinds & norm.invisible
                if hidden and direction in spec.directions and trust in spec.trust:
                    found.append(_finding(spec, spec.description, ", ".join(sorted(hidden))))
        return found

    def _scan_boundaries(self, action: Action, masked: list[str], out: list[Finding],
                         resume: _Resume | None, resume_at: int,
                         ) -> tuple[tuple[FindingRow, ...], str | None]:
        """A phrase split across two consecutive untrusted messages is still one phrase.

        The boundaries up to `resume_at` are those of the request that ended there: its
        findings are replayed in order, and the scan goes on from its last text. Returns
        every boundary's findings and the tail to resume from (see `_Resume`)."""
        found: list[FindingRow] = []
        previous: str | None = None
        if resume is not None:
            found.extend(resume.boundaries)
            previous = resume.tail
            for finding in map(Finding.from_row, resume.boundaries):
                if all(f.rule_id != finding.rule_id for f in out):
                    out.append(finding)
        segments = action.segments
        for i in range(resume_at + 1, len(segments)):
            segment, text = segments[i], masked[i]
            if segment.trust not in _UNTRUSTED or segment.tool:
                previous = None
                continue
            if previous is not None:
                joined = previous[-BOUNDARY_CHARS:] + "\n" + text[:BOUNDARY_CHARS]
                rows = self._scan_rows(joined, "request", segment.trust.value, "")
                found.extend(rows)
                for finding in map(Finding.from_row, rows):
                    if all(f.rule_id != finding.rule_id for f in out):
                        out.append(finding)
            previous = text
        return tuple(found), previous

    # -- responses ----------------------------------------------------------------

    def evaluate_response(
        self, principal: Principal, action: Action, session: str = ""
    ) -> Decision:
        """Check model output text and authorize every tool call the model proposes."""
        try:
            findings: list[Finding] = []
            self.limits.check_tool_calls(principal, session, action.tool_calls, findings)
            self._arguments.check(action.tool_calls, findings)
            needs: list[ApprovalNeed] = []
            self._agent_actions.check(principal, action.tool_calls, findings, needs)
            for segment in action.segments:
                # A provider-run tool's result travels in the response but is content the
                # model read, like a tool result in a request: the same rules judge it.
                trust = segment.trust.value
                direction = "request" if trust in _READ_BY_MODEL else "response"
                for finding in self.scan_text(segment.text, direction, trust, segment.tool):
                    if finding not in findings:
                        findings.append(finding)
            for call in action.tool_calls:
                for finding in self.scan_text(call.raw_arguments, "response", "assistant",
                                              call.name or "?"):
                    if finding not in findings:
                        findings.append(finding)
            removed = self._actions.calls(principal, session, action.tool_calls, findings,
                                          needs)
            if any(f.rule_id in self._tainting and not f.shadow for f in findings):
                self.limits.taint(principal, session)
        except Exception as exc:
            return _internal_error("response", exc)
        young_objects.collect_if_due()
        return Decision(
            verdict=combine(findings),
            findings=findings,
            policy_hash=self.policy.content_hash,
            removed_tool_calls=removed,
            approvals=[n for n in needs if n.call_id not in removed],
        )

    def authorize_tool(self, principal: Principal, session: str, tool: str,
                       arguments: dict[str, Any], stage: str) -> AuthzResult:
        """Cedar's `call_tool` for one tool (see `ActionAuthorization.tool`)."""
        return self._actions.tool(principal, session, tool, arguments, stage)

    def authorize_mcp(self, principal: Principal, server: str, method: str,
                      tool: str) -> Finding | None:
        """Cedar's `call_mcp`: the finding that refuses this message, or None."""
        return self._actions.mcp(principal, server, method, tool)

    def authorize_http(self, principal: Principal, method: str, host: str,
                       path: str) -> Finding | None:
        """Cedar's `http_request` (the egress data plane): the refusing finding, or None."""
        return self._actions.http(principal, method, host, path)
