"""One checked model request on its way upstream, and its whole (non-streamed) answer:
route, evaluate the answer, settle approvals, audit before release, reply in the wire's
own format. Protocol-neutral: the `Wire` says how its JSON maps to actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.errors import ProtocolError
from lictor.adapters.wire import CHAT, Wire
from lictor.enforcement.engine import RequestOutcome
from lictor.enforcement.types import STOPS, Action, Decision, Finding, Principal
from lictor.proxy import audit_entries
from lictor.proxy.openai_errors import error_response, policy_error

if TYPE_CHECKING:
    from lictor.proxy.gateway import Gateway


@dataclass(slots=True)
class Exchange:
    """One checked request on its way upstream: who, where to, what, and its vault."""

    rid: str
    principal: Principal
    route: Route
    backend: Backend
    body: dict[str, Any]  # as it goes upstream: masked, forbidden tools removed
    outcome: RequestOutcome
    request_record: dict[str, Any]  # audited with the response, in one commit
    session: str  # the agent's own session id (x-lictor-session), for per-session limits
    approval_ids: str = ""  # approvals the agent presents (x-lictor-approval)
    events: list[dict[str, Any]] = field(default_factory=list)  # audited with the response
    wire: Wire = CHAT  # the protocol spoken

    def error(self, err: ProtocolError) -> web.Response:
        """`err` in this exchange's protocol."""
        return error_response(err, self.rid, self.wire.error_body)


def blocking(decision: Decision) -> Finding:
    found = decision.blocking_finding
    assert found is not None
    return found


def audit_choices(gw: Gateway, choices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the model produced, as the audit keeps it (PII redacted)."""
    return audit_entries.redacted_choices(choices, gw.engine.redact)


def refused_after_checks(gw: Gateway, ex: Exchange, err: ProtocolError, kind: str,
                         path: str | None = None) -> web.Response:
    """A checked request that gets an error instead of an answer (`kind`: see
    `audit_entries.refused`), audited with its checks in one commit before it goes back."""
    try:
        gw.append_records(ex.request_record, audit_entries.refused(
            kind=kind,
            request_id=ex.rid,
            principal=ex.principal,
            path=path,
            status=err.status,
            code=err.code,
            reason=err.message,
            policy_hash=gw.engine.policy.content_hash,
        ))
    except ProtocolError as audit_err:
        return ex.error(audit_err)
    return ex.error(err)


async def settle_approvals(gw: Gateway, ex: Exchange, action: Action,
                           decision: Decision) -> tuple[Decision, dict[str, str]]:
    """Release approved calls; ask (and in hold mode, wait) for the others. What was
    asked for is audited before anyone can see it or wait on it."""
    settled, settlement = await gw.approvals.settle(
        ex.principal, ex.rid, action.tool_calls, decision,
        restore=ex.outcome.vault.restore, presented=ex.approval_ids,
        audit=gw.append_records)
    ex.events.extend(settlement.events)  # audited with the response
    return settled, settlement.headers


async def complete(gw: Gateway, ex: Exchange) -> web.Response:
    """Ask the backend for the whole answer, check it, audit, and release it."""
    wire = ex.wire
    try:
        resp = await wire.complete(ex.backend, ex.body, ex.route)
        gw.telemetry.responded(resp)
        resp_action = wire.adapter.parse_response(resp)
    except ProtocolError as err:
        return refused_after_checks(gw, ex, err, "upstream_error")
    rdecision = gw.telemetry.timed(gw.engine.evaluate_response, ex.principal,
                                   resp_action, ex.session)
    headers = {"x-lictor-request-id": ex.rid}
    if rdecision.approvals:
        try:
            rdecision, asked = await settle_approvals(gw, ex, resp_action, rdecision)
        except ProtocolError as err:
            return ex.error(err)
        headers.update(asked)
    try:
        gw.append_records(*ex.events, ex.request_record, audit_entries.model_response(
            request_id=ex.rid,
            principal=ex.principal,
            decision=rdecision,
            choices=audit_choices(gw, wire.adapter.produced(resp)),
            usage=resp.get("usage"),
        ))
    except ProtocolError as err:
        return ex.error(err)
    gw.engine.limits.record_usage(ex.principal, ex.session, wire.usage_tokens(resp.get("usage")))
    if rdecision.verdict in STOPS:
        return ex.error(policy_error(blocking(rdecision), "response"))
    out = wire.adapter.apply_response(resp, rdecision, ex.outcome.vault)
    return web.json_response(out, headers=headers)
