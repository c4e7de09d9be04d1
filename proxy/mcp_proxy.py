"""The MCP proxy: agents reach upstream MCP servers through lictor at `/mcp/{server}`.

Streamable HTTP both ways: POST (one JSON-RPC message), GET (the server's stream), DELETE
(end the session); servers on the older HTTP+SSE transport are served by `SseTransport`,
which decides and audits each message through `admit`, as here. Per request: authenticate
the agent's own key, parse (bad input gets a JSON-RPC error and is never forwarded), decide
(`McpGuard`), audit, and only then forward with lictor's own headers (`McpRelay`, which
judges and audits every answer on its way back).

lictor's own answers to a valid request are JSON-RPC errors in an HTTP 200, so MCP SDKs
raise them to the caller; HTTP error statuses mean the HTTP request itself was refused
(bad key 401, unknown server 404, bad JSON 400), or are the upstream server's, relayed.
"""

from __future__ import annotations

import os
import secrets

from aiohttp import web

from lictor.adapters import mcp
from lictor.adapters.errors import ProtocolError
from lictor.adapters.mcp import JsonRpcError, Kind, Message
from lictor.enforcement.types import Finding, Principal, Verdict
from lictor.proxy import audit_entries
from lictor.proxy.approval_flow import APPROVAL_HEADER, HELD_RULE
from lictor.proxy.body_deadline import BodyTimeout, read_body_within
from lictor.proxy.config import Config, ConfigError
from lictor.proxy.gateway import SESSION_HEADER, Gateway
from lictor.proxy.mcp_guard import Caller, Checked, McpGuard, SessionOwners
from lictor.proxy.mcp_pins import PinStore
from lictor.proxy.mcp_relay import (
    SESSION_ID,
    Exchange,
    McpRelay,
    Upstream,
    audit_failure,
    audit_unavailable,
    audited,
    json_response,
    request_headers,
)
from lictor.proxy.mcp_sse_transport import SseTransport


class McpProxy:
    """The `/mcp/{server}` endpoint: who asks, of which server, and whether it may."""

    def __init__(self, gateway: Gateway, config: Config, pins: PinStore) -> None:
        self.gateway = gateway
        self.guard = McpGuard(lambda: gateway.engine, pins)
        self.owners = SessionOwners()
        self.relay = McpRelay(gateway, self.guard, self.owners)
        self.upstreams: dict[str, Upstream] = {}
        for server in config.mcp_servers:
            headers = {}
            if server.api_key_env:
                key = os.environ.get(server.api_key_env)
                if not key:
                    raise ConfigError(f"MCP server {server.name!r}: environment variable "
                                      f"{server.api_key_env} is not set")
                headers["Authorization"] = f"Bearer {key}"
            self.upstreams[server.name] = Upstream(server, headers)
        self.sse = SseTransport(self)  # servers that speak the older HTTP+SSE transport

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/mcp/{server}", self.handle)
        self.sse.routes(app)
        app.on_shutdown.append(self.relay.shutdown)
        app.on_cleanup.append(self.relay.cleanup)
        app.on_cleanup.append(self._close_pins)

    async def _close_pins(self, app: web.Application) -> None:
        self.guard.pins.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rid = "mcp_" + secrets.token_hex(12)
        principal: Principal | None = None
        try:
            principal = self.authenticate(request)
            upstream = self.find_upstream(request, "streamable_http")
            session_id = request.headers.get(SESSION_ID)
            if session_id and not self.owners.allows(upstream.config.name, session_id,
                                                     principal.agent_id):
                raise JsonRpcError(mcp.POLICY_BLOCKED, "this MCP session was opened by "
                                   "another agent", status=403)
            if request.method == "POST":
                return await self._post(request, rid, principal, upstream)
            if request.method in ("GET", "DELETE"):
                return await self._session_call(request, rid, principal, upstream)
            raise JsonRpcError(mcp.INVALID_REQUEST, f"{request.method} is not part of MCP's "
                               "HTTP transport: use POST, GET or DELETE", status=405)
        except JsonRpcError as err:
            return self.reject(request, rid, principal, err)

    def authenticate(self, request: web.Request) -> Principal:
        principal = self.gateway.keys.authenticate(request.headers.get("Authorization"))
        if principal is None:
            raise JsonRpcError(mcp.NOT_AUTHENTICATED, "missing or unknown agent key: send "
                               "your lictor agent key as 'Authorization: Bearer <key>'",
                               status=401)
        return principal

    def find_upstream(self, request: web.Request, transport: str) -> Upstream:
        """The server named in the path, if it speaks `transport`: an agent that uses the
        wrong one is told where to go rather than left to guess."""
        name = request.match_info["server"]
        found = self.upstreams.get(name)
        if found is None:
            known = ", ".join(self.upstreams) or "(none configured)"
            raise JsonRpcError(mcp.UNKNOWN_SERVER, f"no MCP server {name!r} is configured in "
                               f"lictor; known servers: {known}", status=404)
        if found.config.transport != transport:
            where = f"/mcp/{name}/sse" if found.config.transport == "sse" else f"/mcp/{name}"
            raise JsonRpcError(mcp.UNKNOWN_SERVER, f"MCP server {name!r} uses the "
                               f"{found.config.transport} transport: connect to {where}",
                               status=404)
        return found

    async def read_body(self, request: web.Request) -> bytes:
        if request.content_type != "application/json":
            raise JsonRpcError(mcp.INVALID_REQUEST, "Content-Type must be application/json, "
                               f"not {request.content_type or 'absent'}", status=415)
        too_large = JsonRpcError(mcp.INVALID_REQUEST, "the body is larger than the limit of "
                                 f"{self.gateway.max_body_bytes} bytes", status=413)
        if (request.content_length or 0) > self.gateway.max_body_bytes:
            raise too_large
        try:
            return await read_body_within(request, self.gateway.body_timeout_s)
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        except BodyTimeout as exc:
            raise JsonRpcError(mcp.INVALID_REQUEST, str(exc), status=408) from None

    def reject(self, request: web.Request, rid: str, principal: Principal | None,
                err: JsonRpcError) -> web.Response:
        entry = audit_entries.refused(
            kind="rejected_request", request_id=rid, principal=principal, path=request.path,
            status=err.status, code=str(err.code), reason=err.message,
            policy_hash=self.gateway.engine.policy.content_hash)
        return audited(self.gateway, entry, None) or json_response(err.body(), err.status,
                                                                   request_headers(rid))

    @staticmethod
    def caller(request: web.Request, rid: str, principal: Principal,
                upstream: Upstream) -> Caller:
        session = request.headers.get(SESSION_HEADER, "")[:128]
        return Caller(principal, upstream.config, session, rid)

    async def _post(self, request: web.Request, rid: str, principal: Principal,
                    upstream: Upstream) -> web.StreamResponse:
        message = mcp.parse_body(await self.read_body(request))
        caller = self.caller(request, rid, principal, upstream)
        checked = await self.admit(request, caller, message,
                                   request.headers.get(SESSION_ID, ""))
        if checked.refusal is not None:
            refusal = checked.refusal
            return json_response(refusal.body(), refusal.status, request_headers(rid))
        ex = Exchange(caller, upstream, request)
        if message.kind is Kind.REQUEST:
            ex.pending[mcp.id_key(message.id)] = (message.method, checked.tool)
        # what was checked is what goes: re-serialized, so no duplicate key can differ
        sent = checked.substitute or message
        return await self.relay.forward(ex, sent.wire(), message)

    async def admit(self, request: web.Request, caller: Caller, message: Message,
                    session: str) -> Checked:
        """Decide an agent's message (`McpGuard.check`, approvals) and audit it, whichever
        transport brought it: `refusal` is set to what to answer instead of forwarding it
        (a refusal, or the audit failure that stops everything). `session` is the server
        session it belongs to: an answer is matched to the server's request it answers."""
        answers = ""
        if message.kind is Kind.RESPONSE:
            answers = self.relay.asked.answered(caller.server.name, session, message)
        checked = self.gateway.telemetry.timed(self.guard.check, caller, message, answers)
        if checked.decision.approvals and checked.call is not None:
            failed = await self._settle_approvals(request, caller, message, checked)
            if failed is not None:
                checked.refusal = failed
                return checked
        failed = audit_failure(self.gateway, audit_entries.mcp_request(
            request_id=caller.request_id, principal=caller.principal,
            server=caller.server.name, message=message.kind.value,
            method=answers or message.method,
            tool=checked.tool, decision=checked.decision, content=checked.content), message)
        if failed is not None:
            checked.refusal = failed
        return checked

    async def _settle_approvals(self, request: web.Request, caller: Caller, message: Message,
                                checked: Checked) -> JsonRpcError | None:
        """A tools/call that needs people: release it if approved, else ask (in `hold`
        mode, wait) and refuse it with the approval id. Asks are audited before anyone
        sees them; an audit failure is returned, to answer instead."""
        assert checked.call is not None
        gateway = self.gateway
        try:
            decision, settlement = await gateway.approvals.settle(
                caller.principal, caller.request_id, [checked.call], checked.decision,
                restore=lambda text: text,
                presented=request.headers.get(APPROVAL_HEADER, "")[:1024],
                audit=gateway.append_records)
            gateway.append_records(*settlement.events)
        except ProtocolError as exc:
            return audit_unavailable(exc, message)
        checked.decision = decision
        held = next((f for f in decision.findings if f.rule_id == HELD_RULE), None)
        if decision.removed_tool_calls and held is not None:
            stop = Finding(held.rule_id, Verdict.APPROVE, held.owasp, held.severity,
                           held.message, evidence=held.evidence)
            checked.refusal = mcp.refusal(stop, "tool call", message.id, caller.request_id)
        else:
            checked.refusal = self.guard.refusal(decision, "tool call", message,
                                                 caller.request_id)
        return None

    async def _session_call(self, request: web.Request, rid: str, principal: Principal,
                            upstream: Upstream) -> web.StreamResponse:
        what = "get_stream" if request.method == "GET" else "delete_session"
        caller = self.caller(request, rid, principal, upstream)
        decision = self.gateway.telemetry.timed(self.guard.check_session, principal,
                                                caller.session)
        failed = audited(self.gateway, audit_entries.mcp_request(
            request_id=rid, principal=principal, server=upstream.config.name, message=what,
            method="", tool="", decision=decision, content=[]), None)
        if failed is not None:
            return failed
        refusal = self.guard.refusal(decision, "MCP " + what.replace("_", " "), None, rid)
        if refusal is not None:
            return json_response(refusal.body(), refusal.status, request_headers(rid))
        resp = await self.relay.forward(Exchange(caller, upstream, request), None, None)
        session_id = request.headers.get(SESSION_ID)
        if request.method == "DELETE" and resp.status < 300 and session_id:
            self.owners.unbind(upstream.config.name, session_id)
        return resp
