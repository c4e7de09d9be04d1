"""The `http_request` action: what the egress proxy decides for every request that is not a
model API call. Cedar authorizes method, host and path for the principal (hosts no policy
permits are refused); the body going out is scanned like an agent's message (PII, secrets)
and the body coming back like a tool result (injection). Both are audited with the
gateway's record shapes, before anything is released.

A `mask` verdict on a request to a tool is recorded, and the body goes out as the agent
wrote it: the tool needs the real values; masking is for what model providers see.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from lictor.adapters import http_request
from lictor.adapters.errors import ProtocolError
from lictor.enforcement.engine import RequestOutcome
from lictor.enforcement.types import STOPS, Action, Decision, Finding, Principal, combine
from lictor.proxy import audit_entries
from lictor.proxy.gateway import Gateway


@dataclass(slots=True)
class Refusal:
    """A readable answer lictor gives instead of forwarding (JSON, OpenAI-style error)."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        error = {"message": self.message, "type": "lictor_egress", "code": self.code,
                 **self.extra}
        return json.dumps({"error": error}).encode()


@dataclass(slots=True)
class HttpExchange:
    """One outbound request on its way: who, where, and its audit record (written with
    the response, in one commit)."""

    rid: str
    principal: Principal
    host: str
    request_record: dict[str, Any]


def _policy_refusal(finding: Finding, host: str, what: str) -> Refusal:
    rule = finding.rule_id
    hint = (" Outbound hosts are allowed by Cedar `http_request` policies in lictor's rule "
            "packs." if rule.startswith("cedar:") else "")
    if finding.retry_after is not None:  # a rate limit: try again later
        return Refusal(429, "rate_limited", f"lictor refused {what}: {finding.message} "
                       f"(rule {rule})", {"rule": rule, "retry_after": finding.retry_after})
    return Refusal(403, "policy_violation",
                   f"lictor refused {what}: {finding.message} (rule {rule}).{hint}",
                   {"rule": rule, "host": host})


def _audit_failure(err: ProtocolError) -> Refusal:
    return Refusal(err.status, err.code or "audit_unavailable", err.message)


class HttpGuard:
    """Decides and audits plain HTTP traffic with the gateway's engine and audit chain."""

    __slots__ = ("gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway  # its engine is swapped on rule reload: read it per request

    def _judge(self, principal: Principal, action: Action) -> RequestOutcome:
        engine = self.gateway.engine
        return self.gateway.telemetry.timed(engine.evaluate_request, principal, action, "")

    def check_request(self, principal: Principal, method: str, host: str, path: str, *,
                      content_type: str, body: bytes) -> tuple[Refusal | None, HttpExchange]:
        """Authorize and scan one request; a refusal is audited here, an allowed request
        is audited together with its response."""
        gateway = self.gateway
        rid = "req_" + secrets.token_hex(12)
        engine = gateway.engine
        gate: list[Finding] = []  # the kill switch and request rates, as for MCP requests
        engine.limits.check_request(principal, "", gate)
        denied = engine.authorize_http(principal, method, host, path.split("?", 1)[0])
        gate += [denied] if denied is not None else []
        text = http_request.body_text(content_type, body)
        if any(f.verdict in STOPS and not f.shadow for f in gate):
            outcome = RequestOutcome(Decision(combine(gate), gate, engine.policy.content_hash),
                                     [], [])
        else:
            outcome = self._judge(principal, http_request.parse_request(text or ""))
        record = audit_entries.http_request(
            request_id=rid, principal=principal, method=method, host=host, path=path,
            decision=outcome.decision, content=outcome.audit_texts, scanned=text is not None)
        ex = HttpExchange(rid, principal, host, record)
        if outcome.decision.verdict not in STOPS:
            return None, ex
        try:
            gateway.append_records(record)
        except ProtocolError as err:
            return _audit_failure(err), ex
        blocking = outcome.decision.blocking_finding
        assert blocking is not None
        return _policy_refusal(blocking, host, f"{method} {host}{path.split('?', 1)[0]}"), ex

    def check_response(self, ex: HttpExchange, status: int, content_type: str,
                       body: bytes) -> Refusal | None:
        """Scan what came back and audit the exchange, before the agent sees anything.

        The answer is untrusted content headed for the agent's context: the pattern rules
        (injection, smuggled characters, secrets) judge it as a tool result. Its text is
        not kept in the audit record (only findings, with redacted evidence, and its size):
        tool answers are large, and are the tool's data, not the agent's."""
        engine = self.gateway.engine
        text = http_request.body_text(content_type, body)
        findings: list[Finding] = []
        for segment in http_request.parse_response(text or "").segments:
            findings += self.gateway.telemetry.timed(
                engine.scan_text, segment.text, "request", segment.trust.value)
        decision = Decision(combine(findings), findings, engine.policy.content_hash)
        entry = audit_entries.http_response(
            request_id=ex.rid, principal=ex.principal, status=status, decision=decision,
            body_bytes=len(body), scanned=text is not None)
        try:
            self.gateway.append_records(ex.request_record, entry)
        except ProtocolError as err:
            return _audit_failure(err)
        if decision.verdict in STOPS:
            blocking = decision.blocking_finding
            assert blocking is not None
            return _policy_refusal(blocking, ex.host, f"the answer of {ex.host}")
        return None

    def check_message(self, principal: Principal | None, text: str,
                      outbound: bool) -> Refusal | None:
        """One WebSocket text message: the pattern rules, as for a body going out (the
        agent's) or coming back (a tool's); the refusal when a finding blocks it."""
        engine = self.gateway.engine
        trust = "user" if outbound else "tool"
        findings = self.gateway.telemetry.timed(engine.scan_text, text, "request", trust)
        blocking = Decision(combine(findings), findings,
                            engine.policy.content_hash).blocking_finding
        if blocking is None:
            return None
        what = "a WebSocket message " + ("to" if outbound else "from") + " the host"
        return _policy_refusal(blocking, "", what)

    def rejected(self, principal: Principal | None, where: str, refusal: Refusal) -> Refusal:
        """A request refused before any check ran (proxy auth, size, encoding), audited like
        the gateway's rejected requests; the refusal itself, or 503 if the audit fails."""
        try:
            self.gateway.append_records(audit_entries.refused(
                kind="rejected_request", request_id="req_" + secrets.token_hex(12),
                principal=principal, path=where, status=refusal.status, code=refusal.code,
                reason=refusal.message, policy_hash=self.gateway.engine.policy.content_hash))
        except ProtocolError as err:
            return _audit_failure(err)
        return refusal

    def upstream_failed(self, ex: HttpExchange, reason: str,
                        code: str = "upstream_unreachable") -> None:
        """The host could not be reached, or its answer cannot be judged: the request and
        the failure are audited."""
        # an audit failure is logged by append_records; the agent gets an error either way
        with contextlib.suppress(ProtocolError):
            self.gateway.append_records(ex.request_record, audit_entries.refused(
                kind="upstream_error", request_id=ex.rid, principal=ex.principal,
                status=502, code=code, reason=reason,
                policy_hash=self.gateway.engine.policy.content_hash))
