"""The HTTP gateway (base_url mode): an aiohttp app serving OpenAI Chat Completions.

Per request: authenticate the agent's own key, read and validate the body, evaluate,
audit (durable) before anything goes upstream or back, route, evaluate the answer,
audit again, and release. Every refusal is an OpenAI-format error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lictor.adapters import openai_chat
from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.errors import ProtocolError, openai_error_body
from lictor.adapters.json_body import JsonBodyError, parse_json_bytes
from lictor.adapters.openai_stream import ChatStream
from lictor.adapters.sse import DONE, frame
from lictor.audit import AuditStore, AuditWriteError
from lictor.audit.checkpoints import Checkpointer
from lictor.enforcement.approvals import ApprovalDesk
from lictor.enforcement.engine import Engine, RequestOutcome
from lictor.enforcement.types import (
    STOPS,
    Action,
    ActionKind,
    Decision,
    Direction,
    Finding,
    Principal,
    ToolCall,
    Verdict,
    combine,
)
from lictor.proxy import audit_entries
from lictor.proxy.agent_keys import AgentKeys
from lictor.proxy.approval_flow import APPROVAL_HEADER, ApprovalFlow
from lictor.proxy.egress_link import EgressLink
from lictor.proxy.openai_errors import error_response, openai_errors_middleware, policy_error
from lictor.proxy.routing import Router
from lictor.proxy.telemetry import NO_TELEMETRY, Telemetry

if TYPE_CHECKING:  # cryptography is imported only when originals are kept
    from lictor.audit.subject_keys import SubjectKeys

log = logging.getLogger("lictor.gateway")

JSON_TYPES = ("application/json",)
KEEPALIVE_S = 10.0  # SSE comment interval while a streamed answer waits for an approval
CLIENT_GONE = ProtocolError(499, "the client disconnected mid-stream", code="client_disconnected")
SESSION_HEADER = "x-lictor-session"


def usage_tokens(usage: Any) -> int:
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0


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


def _blocking(decision: Decision) -> Finding:
    found = decision.blocking_finding
    assert found is not None
    return found


class Gateway:
    """Holds what a request needs: keys, engine, router, audit store."""

    def __init__(
        self,
        keys: AgentKeys,
        engine: Engine,
        router: Router,
        audit: AuditStore,
        max_body_bytes: int,
        *,
        approvals: ApprovalDesk,
        subject_keys: SubjectKeys | None = None,
        subject_header: str = "x-lictor-subject",
        telemetry: Telemetry = NO_TELEMETRY,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.subject_keys = subject_keys  # set: originals are kept, sealed per subject
        self.subject_header = subject_header
        self.keys = keys
        self.engine = engine
        self.approvals = ApprovalFlow(approvals, lambda: self.engine.policy.content_hash)
        self.router = router
        self.audit = audit
        self.checkpointer = checkpointer
        self.max_body_bytes = max_body_bytes
        self.telemetry = telemetry
        self.ready = True
        self.egress: EgressLink | None = None  # set by `serve --egress`: see proxy/egress_link

    # -- helpers -------------------------------------------------------------------

    def append_records(self, *entries: dict[str, Any]) -> None:
        """Append to the audit chain in one commit; ProtocolError 503 if not (fail closed)."""
        try:
            with self.telemetry.audit_append(entries):  # timed; feeds the request's span
                self.audit.append_many(entries)
        except AuditWriteError:
            log.exception("audit append failed")
            raise ProtocolError(
                503,
                "lictor cannot write its audit log; requests are refused until it can",
                error_type="server_error",
                code="audit_unavailable",
            ) from None
        if self.checkpointer is not None:
            try:
                self.checkpointer.after_append()
            except Exception:  # the records are durable; the next checkpoint covers them
                log.exception("audit checkpoint failed")

    def _reject(
        self, request: web.Request, rid: str, principal: Principal | None, err: ProtocolError
    ) -> web.Response:
        entry = audit_entries.refused(
            kind="rejected_request",
            request_id=rid,
            principal=principal,
            path=request.path,
            status=err.status,
            code=err.code,
            reason=err.message,
            policy_hash=self.engine.policy.content_hash,
        )
        try:
            self.append_records(entry)
        except ProtocolError as audit_err:
            return error_response(audit_err, rid)
        return error_response(err, rid)

    async def _read_json(self, request: web.Request) -> Any:
        if request.content_type not in JSON_TYPES:
            raise ProtocolError(
                415,
                f"Content-Type must be application/json, not {request.content_type or 'absent'}",
                code="unsupported_media_type",
            )
        too_large = ProtocolError(
            413,
            f"request body is larger than the limit of {self.max_body_bytes} bytes",
            code="request_too_large",
        )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise too_large
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        try:
            return parse_json_bytes(raw)
        except JsonBodyError as exc:
            raise ProtocolError(400, f"request body is not valid JSON: {exc}",
                                code="invalid_json") from None

    def resolve(self, request: web.Request, model: str) -> tuple[Route, Backend] | None:
        """The route of a model call: the original destination for a call the egress proxy
        forwarded, else the configured model routes."""
        ticket = EgressLink.taken(request) if self.egress is not None else None
        if ticket is not None and self.egress is not None:
            return replace(ticket.route, name=model, upstream_model=model), self.egress.backend
        return self.router.resolve(model)

    def _authenticate(self, request: web.Request) -> Principal:
        ticket = self.egress.take(request) if self.egress is not None else None
        if ticket is not None:  # forwarded by the egress proxy, which named the agent
            return ticket.principal
        principal = self.keys.authenticate(request.headers.get("Authorization"))
        if principal is None:
            missing = not request.headers.get("Authorization")
            raise ProtocolError(
                401,
                "missing API key: send your agent key as 'Authorization: Bearer <key>'"
                if missing
                else "invalid API key: this key is not known to lictor",
                code="invalid_api_key",
            )
        return principal

    # -- endpoints -----------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "not ready"}, status=503)
        return web.json_response(
            {"status": "ready", "policy": self.engine.policy.version,
             "audit_records": self.audit.head[0]}
        )

    async def models(self, request: web.Request) -> web.Response:
        rid = "req_" + secrets.token_hex(12)
        try:
            self._authenticate(request)
        except ProtocolError as err:
            return self._reject(request, rid, None, err)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "lictor"}
            for name in self.router.routes
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        rid = "req_" + secrets.token_hex(12)
        principal: Principal | None = None
        try:
            principal = self._authenticate(request)
            body = await self._read_json(request)
            action = openai_chat.parse_request(body)
            resolved = self.resolve(request, action.model)
            if resolved is None:
                raise ProtocolError(
                    404,
                    f"model {action.model!r} is not routed by lictor; known models: "
                    f"{', '.join(self.router.routes)}",
                    code="model_not_found",
                    param="model",
                )
        except ProtocolError as err:
            return self._reject(request, rid, principal, err)
        route, backend = resolved
        stream = bool(body.get("stream", False))
        session = request.headers.get(SESSION_HEADER, "")[:128]
        outcome = self.telemetry.timed(self.engine.evaluate_request, principal, action, session)
        decision = outcome.decision
        request_record = audit_entries.model_request(
            request_id=rid,
            principal=principal,
            action=action,
            backend=route.backend,
            stream=stream,
            decision=decision,
            audit_texts=outcome.audit_texts,
        )
        if self.subject_keys is not None and outcome.vault:
            subject = (request.headers.get(self.subject_header, "")[:256]
                       or f"session:{principal.agent_id}/{session}")
            request_record["originals"] = self.subject_keys.seal(
                subject, json.dumps(outcome.vault.originals()).encode())
        if decision.verdict in STOPS:
            try:
                self.append_records(request_record)
            except ProtocolError as err:
                return error_response(err, rid)
            return error_response(policy_error(_blocking(decision), "request"), rid)
        upstream_body = openai_chat.apply_request(body, action, outcome.masked_texts, decision)
        ex = Exchange(rid, principal, route, backend, upstream_body, outcome, request_record,
                      session, request.headers.get(APPROVAL_HEADER, "")[:1024])
        if stream:
            return await self._stream(request, ex)
        return await self._complete(ex)

    async def _upstream_failed(self, ex: Exchange, err: ProtocolError) -> web.Response:
        try:
            self.append_records(ex.request_record, audit_entries.refused(
                kind="upstream_error",
                request_id=ex.rid,
                principal=ex.principal,
                status=err.status,
                code=err.code,
                reason=err.message,
                policy_hash=self.engine.policy.content_hash,
            ))
        except ProtocolError as audit_err:
            return error_response(audit_err, ex.rid)
        return error_response(err, ex.rid)

    def _audit_choices(self, choices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return audit_entries.redacted_choices(choices, self.engine.redact)

    async def _complete(self, ex: Exchange) -> web.Response:
        try:
            resp = await ex.backend.complete(ex.body, ex.route)
            self.telemetry.responded(resp)
            resp_action = openai_chat.parse_response(resp)
        except ProtocolError as err:
            return await self._upstream_failed(ex, err)
        rdecision = self.telemetry.timed(self.engine.evaluate_response, ex.principal,
                                         resp_action, ex.session)
        headers = {"x-lictor-request-id": ex.rid}
        if rdecision.approvals:
            try:
                rdecision, asked = await self._settle_approvals(ex, resp_action, rdecision)
            except ProtocolError as err:
                return error_response(err, ex.rid)
            headers.update(asked)
        try:
            self.append_records(*ex.events, ex.request_record, audit_entries.model_response(
                request_id=ex.rid,
                principal=ex.principal,
                decision=rdecision,
                choices=self._audit_choices(openai_chat.produced(resp)),
                usage=resp.get("usage"),
            ))
        except ProtocolError as err:
            return error_response(err, ex.rid)
        self.engine.limits.record_usage(ex.principal, ex.session, usage_tokens(resp.get("usage")))
        if rdecision.verdict in STOPS:
            return error_response(policy_error(_blocking(rdecision), "response"), ex.rid)
        out = openai_chat.apply_response(resp, rdecision, ex.outcome.vault)
        return web.json_response(out, headers=headers)

    async def _release_held(self, resp: web.StreamResponse, chat: ChatStream,
                            ex: Exchange) -> list[dict[str, Any]]:
        """Settle a stream's calls that need approval (waiting in `hold` mode, with SSE
        comments to keep the connection open), then release them."""
        out: list[dict[str, Any]] = []
        while chat.held:
            held = chat.held.pop(0)
            action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE,
                            openai_chat.PROTOCOL, tool_calls=held.calls)
            settling = asyncio.ensure_future(self._settle_approvals(ex, action, held.decision))
            try:
                while not settling.done():
                    await asyncio.wait({settling}, timeout=KEEPALIVE_S)
                    if not settling.done():
                        await resp.write(b": lictor is waiting for an approval\n\n")
            finally:
                settling.cancel()  # a client gone mid-wait stops the wait
            decision, _ = settling.result()
            out.extend(chat.release(held.index, held.calls, decision, held.finish))
        return out

    async def _settle_approvals(self, ex: Exchange, action: Action,
                                decision: Decision) -> tuple[Decision, dict[str, str]]:
        """Release approved calls; ask (and in hold mode, wait) for the others. What was
        asked for is audited before anyone can see it or wait on it."""
        settled, settlement = await self.approvals.settle(
            ex.principal, ex.rid, action.tool_calls, decision,
            restore=ex.outcome.vault.restore, presented=ex.approval_ids,
            audit=self.append_records)
        ex.events.extend(settlement.events)  # audited with the response
        return settled, settlement.headers

    def _chat_stream(self, ex: Exchange) -> ChatStream:
        engine, principal, timed = self.engine, ex.principal, self.telemetry.timed

        def authorize(calls: list[ToolCall]) -> Decision:
            action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE,
                            openai_chat.PROTOCOL, tool_calls=calls)
            return timed(engine.evaluate_response, principal, action, ex.session)

        def check_text(text: str) -> list[Finding]:
            return timed(engine.scan_window, text, "response", "assistant")

        return ChatStream(ex.outcome.vault, check_text, authorize)

    async def _stream(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        chat = self._chat_stream(ex)
        upstream = ex.backend.stream(ex.body, ex.route)
        try:  # the first chunk decides between a JSON error and a stream
            first: dict[str, Any] | None = await anext(upstream, None)
        except ProtocolError as err:
            await upstream.aclose()  # type: ignore[attr-defined]
            return await self._upstream_failed(ex, err)
        self.telemetry.responded(first)
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "x-lictor-request-id": ex.rid,
        })
        await resp.prepare(request)
        failure, usage = await self._pump(resp, chat, upstream, first, ex)
        finals = chat.finish() if failure is None and chat.blocked is None else []
        if chat.held and failure is None:
            try:
                finals += await self._release_held(resp, chat, ex)
            except ProtocolError as err:
                failure, finals = err, []
            except ConnectionError:
                failure, finals = CLIENT_GONE, []
        findings = list(chat.findings)
        verdict = (Verdict.BLOCK if failure is not None
                   else chat.blocked.verdict if chat.blocked is not None else combine(findings))
        rdecision = Decision(
            verdict,
            findings,
            self.engine.policy.content_hash,
            removed_tool_calls=chat.removed_tool_calls,
        )
        entry = audit_entries.model_response(
            request_id=ex.rid,
            principal=ex.principal,
            decision=rdecision,
            choices=self._audit_choices(chat.audit_content()),
            usage=usage,
        )
        if failure is not None:
            entry["stream_error"] = {"status": failure.status, "code": failure.code}
        try:
            self.append_records(*ex.events, ex.request_record, entry)  # before calls and end
        except ProtocolError as err:
            failure, finals = err, []
        self.engine.limits.record_usage(ex.principal, ex.session, usage_tokens(usage))
        if chat.blocked is not None:
            tail = [frame(openai_error_body(policy_error(chat.blocked, "response")))]
        elif failure is not None:
            tail = [frame(openai_error_body(failure))]
        else:
            tail = [frame(out) for out in finals] + [DONE]
        try:  # the last frames and the end of the stream in one write
            await resp.write_eof(b"".join(tail))
        except ConnectionError:
            log.info("client of %s went away before the end of the stream", ex.rid)
        return resp

    async def _pump(
        self,
        resp: web.StreamResponse,
        chat: ChatStream,
        upstream: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
        ex: Exchange,
    ) -> tuple[ProtocolError | None, Any]:
        """Relay upstream chunks through `chat` until the end, a block, or a failure."""
        usage: Any = None
        try:
            chunk = first
            while chunk is not None:
                if chunk.get("usage") is not None:
                    usage = chunk["usage"]
                outs = chat.feed(chunk)
                if chat.held:
                    outs += await self._release_held(resp, chat, ex)
                if outs:  # one write for what one upstream chunk released
                    await resp.write(b"".join(map(frame, outs)))
                if chat.blocked is not None:
                    break
                chunk = await anext(upstream, None)
        except ProtocolError as err:
            return err, usage
        except ConnectionError:
            return CLIENT_GONE, usage
        finally:
            await upstream.aclose()  # type: ignore[attr-defined]
        return None, usage


GATEWAY_KEY = web.AppKey("gateway", Gateway)


def build_app(gateway: Gateway) -> web.Application:
    app = web.Application(
        client_max_size=gateway.max_body_bytes, middlewares=[openai_errors_middleware]
    )
    app[GATEWAY_KEY] = gateway
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/v1/models", gateway.models)
    app.router.add_post("/v1/chat/completions", gateway.chat_completions)
    return app
