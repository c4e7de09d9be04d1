"""The HTTP gateway (base_url mode): an aiohttp app serving OpenAI Chat Completions, the
Responses API, embeddings and Anthropic Messages.

Per request: authenticate the agent's own key, read and validate the body, evaluate,
route, evaluate the answer, and release it only once the request's records are durable
(one commit: what was asked, decided and returned; a stream's text may go out as it is
judged, its tool calls and its end only after that commit: `model_exchange`,
`gateway_stream`).
A refusal is audited before its answer goes back. Every refusal is an error in the
client's own protocol.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lictor.adapters import hosted_tools
from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.errors import ProtocolError
from lictor.adapters.json_body import JsonBodyError, parse_json_bytes
from lictor.adapters.wire import CHAT, EMBEDDINGS, MESSAGES_WIRE, RESPONSES_WIRE, Wire
from lictor.audit import AuditStore, AuditWriteError
from lictor.audit.checkpoints import Checkpointer
from lictor.enforcement.approvals import ApprovalDesk
from lictor.enforcement.engine import Engine
from lictor.enforcement.types import STOPS, Principal
from lictor.proxy import audit_entries, gateway_stream, model_exchange
from lictor.proxy.agent_keys import AgentKeys
from lictor.proxy.approval_flow import APPROVAL_HEADER, ApprovalFlow
from lictor.proxy.body_deadline import BodyTimeout, read_body_within
from lictor.proxy.egress_link import EgressLink
from lictor.proxy.model_exchange import Exchange, blocking
from lictor.proxy.openai_errors import error_response, openai_errors_middleware, policy_error
from lictor.proxy.routing import Router
from lictor.proxy.telemetry import NO_TELEMETRY, Telemetry

if TYPE_CHECKING:  # cryptography is imported only when originals are kept
    from lictor.audit.subject_keys import SubjectKeys

log = logging.getLogger("lictor.gateway")

JSON_TYPES = ("application/json",)
SESSION_HEADER = "x-lictor-session"
__all__ = ["SESSION_HEADER", "Exchange", "Gateway", "build_app"]


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
        body_timeout_s: float = 30.0,
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
        self.body_timeout_s = body_timeout_s  # limits.body_timeout_s: see proxy/body_deadline
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
        self, request: web.Request, rid: str, principal: Principal | None, err: ProtocolError,
        wire: Wire = CHAT,
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
            return error_response(audit_err, rid, wire.error_body)
        return error_response(err, rid, wire.error_body)

    async def _read_json(self, request: web.Request) -> Any:
        # the exact header SDKs send skips aiohttp's parse (an email.parser run, ~9 us)
        if (request.headers.get("Content-Type") != "application/json"
                and request.content_type not in JSON_TYPES):
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
            raw = await read_body_within(request, self.body_timeout_s)
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        except BodyTimeout as exc:
            raise ProtocolError(408, str(exc), code="request_timeout") from None
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
        """The agent's own key, as `Authorization: Bearer` or (Anthropic SDKs) `x-api-key`;
        for a call the egress proxy forwarded, the agent it named."""
        ticket = self.egress.take(request) if self.egress is not None else None
        if ticket is not None:  # forwarded by the egress proxy, which named the agent
            return ticket.principal
        header = request.headers.get("Authorization")
        if not header and request.headers.get("x-api-key"):
            header = "Bearer " + request.headers["x-api-key"]
        principal = self.keys.authenticate(header)
        if principal is None:
            missing = not header
            raise ProtocolError(
                401,
                "missing API key: send your agent key as 'Authorization: Bearer <key>' "
                "(or 'x-api-key: <key>')"
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
        return await self.exchange(request, CHAT)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI Responses API (POST /v1/responses)."""
        return await self.exchange(request, RESPONSES_WIRE)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic Messages (POST /v1/messages), with Anthropic's error format."""
        return await self.exchange(request, MESSAGES_WIRE)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """OpenAI embeddings (POST /v1/embeddings): inputs scanned and masked."""
        return await self.exchange(request, EMBEDDINGS)

    async def exchange(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        """The pipeline every model protocol shares: authenticate, read, parse, route,
        evaluate, audit a refusal, then the answer, whole or streamed."""
        rid = "req_" + secrets.token_hex(12)
        principal: Principal | None = None
        try:
            principal = self._authenticate(request)
            body = await self._read_json(request)
            action = wire.adapter.parse_request(body)
            resolved = self.resolve(request, action.model)
            if resolved is None:
                raise ProtocolError(
                    404,
                    f"model {action.model!r} is not routed by lictor; known models: "
                    f"{', '.join(self.router.routes)}",
                    code="model_not_found",
                    param="model",
                )
            stream = bool(body.get("stream", False))
            if stream and wire.open_stream is None:
                raise ProtocolError(400, "this endpoint does not stream", param="stream",
                                    code="invalid_request")
        except ProtocolError as err:
            return self._reject(request, rid, principal, err, wire)
        route, backend = resolved
        hosted_tools.add_implied(action, route)
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
        ex = Exchange(rid, principal, route, backend, body, outcome, request_record,
                      session, request.headers.get(APPROVAL_HEADER, "")[:1024], wire=wire)
        if decision.verdict in STOPS:
            try:
                self.append_records(request_record)
            except ProtocolError as err:
                return ex.error(err)
            return ex.error(policy_error(blocking(decision), "request"))
        try:
            hosted_tools.refuse_implied(action, decision)
            ex.body = wire.adapter.apply_request(body, action, outcome.masked_texts, decision)
            ex.body = wire.prepare(backend, ex.body, route)
        except ProtocolError as err:  # a refused tool the request cannot go without, masked
            # text that no longer fits its place, or what the route's backend cannot carry
            return model_exchange.refused_after_checks(self, ex, err, "rejected_request",
                                                       request.path)
        if stream:
            return await gateway_stream.relay(self, request, ex)
        return await model_exchange.complete(self, ex)


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
    app.router.add_post("/v1/responses", gateway.responses)
    app.router.add_post("/v1/messages", gateway.messages)
    app.router.add_post("/v1/embeddings", gateway.embeddings)
    return app
