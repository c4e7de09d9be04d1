"""The admin API: operators act on running agents (the kill switch) and approvers decide
on held actions, authenticated with admin keys that are not agent keys. Every action is
audited with who did it and why.

    GET    /admin/agents                  agents and whether each is stopped
    POST   /admin/agents/{id}/kill        stop an agent at once   {"reason": "..."}
    DELETE /admin/agents/{id}/kill        let it run again        {"reason": "..."}
    GET    /admin/approvals[?status=S]    approvals (pending, approved, denied, used, expired)
    GET    /admin/approvals/{id}          one approval
    POST   /admin/approvals/{id}/approve  {"reason": "..."}  (counts toward the approvers needed)
    POST   /admin/approvals/{id}/deny     {"reason": "..."}  (ends it)
    POST   /admin/rules/reload            load the rule files now (422 with the problems)
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lictor.adapters.errors import ProtocolError
from lictor.adapters.json_body import JsonBodyError, parse_json_bytes
from lictor.enforcement.approvals import ApprovalError
from lictor.enforcement.limits import kill_key
from lictor.enforcement.types import Principal
from lictor.proxy import audit_entries
from lictor.proxy.agent_keys import AgentKeys
from lictor.proxy.body_deadline import BodyTimeout, read_body_within
from lictor.proxy.gateway import GATEWAY_KEY, Gateway
from lictor.proxy.kill_switches import KillSwitches
from lictor.proxy.openai_errors import error_response
from lictor.proxy.rule_reload import RuleReloader

AdminHandler = Callable[[web.Request, Principal, str], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminApi:
    def __init__(self, gateway: Gateway, admin_keys: AgentKeys,
                 reloader: RuleReloader, kill_switches: KillSwitches) -> None:
        self.gateway = gateway
        self.admin_keys = admin_keys
        self.reloader = reloader
        self.kill_switches = kill_switches

    def _admin(self, request: web.Request) -> Principal:
        admin = self.admin_keys.authenticate(request.headers.get("Authorization"))
        if admin is None or admin.agent_id in self.admin_keys.disabled_ids:
            raise ProtocolError(401, "this endpoint needs an admin key "
                                "('Authorization: Bearer <admin key>')", code="invalid_admin_key")
        return admin

    def _agent(self, request: web.Request) -> Principal:
        agent_id = request.match_info["agent_id"]
        for principal in self.gateway.keys.principals:
            if principal.agent_id == agent_id:
                return principal
        raise ProtocolError(404, f"no agent {agent_id!r} is configured", code="agent_not_found")

    def endpoint(self, handler: AdminHandler) -> Handler:
        """An admin handler behind admin-key authentication; refusals as OpenAI errors."""
        async def authenticated(request: web.Request) -> web.StreamResponse:
            rid = "adm_" + secrets.token_hex(12)
            try:
                return await handler(request, self._admin(request), rid)
            except ProtocolError as err:
                return error_response(err, rid)

        return authenticated

    async def agents(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        state = self.gateway.engine.limits.state
        return web.json_response({"agents": [
            {"id": p.agent_id, "team": p.team, "tenant": p.tenant,
             "stopped": state.switch(kill_key(p.agent_id))}
            for p in self.gateway.keys.principals
        ]})

    async def kill(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        return await self._switch(request, admin, rid, on=True)

    async def revive(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        return await self._switch(request, admin, rid, on=False)

    async def _switch(self, request: web.Request, admin: Principal, rid: str,
                      on: bool) -> web.Response:
        agent = self._agent(request)
        reason = await read_reason(request)
        state = self.gateway.engine.limits.state
        if on:  # stop at once, in memory first: a failure after this still leaves it stopped
            state.set_switch(kill_key(agent.agent_id), True)
        try:
            self.kill_switches.record(agent.agent_id, on, reason, admin.agent_id)
        except sqlite3.Error as exc:
            raise ProtocolError(503, f"lictor cannot keep the kill switch: {exc}",
                                error_type="server_error", code="state_unavailable") from None
        if not on:
            state.set_switch(kill_key(agent.agent_id), False)
        self.gateway.append_records(audit_entries.admin_action(
            request_id=rid, admin=admin, action="kill" if on else "revive", agent=agent,
            reason=reason, policy_hash=self.gateway.engine.policy.content_hash))
        return web.json_response({"agent": agent.agent_id, "stopped": on, "reason": reason},
                                 headers={"x-lictor-request-id": rid})

    async def approvals(self, request: web.Request, admin: Principal,
                        rid: str) -> web.Response:
        status = request.query.get("status") or None
        desk = self.gateway.approvals.desk
        return web.json_response({"approvals": [a.as_record() for a in desk.listing(status)]})

    async def approval(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        found = self.gateway.approvals.desk.get(request.match_info["approval_id"])
        if found is None:
            raise ProtocolError(404, "no such approval", code="approval_not_found")
        return web.json_response(found.as_record())

    async def approve(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        return await self._vote(request, admin, rid, approve=True)

    async def deny(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        return await self._vote(request, admin, rid, approve=False)

    async def _vote(self, request: web.Request, admin: Principal, rid: str,
                    approve: bool) -> web.Response:
        gateway = self.gateway
        reason = await read_reason(request)
        try:
            decided = gateway.approvals.desk.vote(
                request.match_info["approval_id"], admin, approve, reason)
        except ApprovalError as exc:
            raise ProtocolError(exc.status, str(exc), code=exc.code) from None
        gateway.append_records(audit_entries.approval_event(
            kind="approval_vote", request_id=rid, agent=None, admin=admin,
            approval=decided.as_record(), reason=reason,
            policy_hash=gateway.engine.policy.content_hash))
        return web.json_response(decided.as_record(), headers={"x-lictor-request-id": rid})

    async def reload_rules(self, request: web.Request, admin: Principal,
                           rid: str) -> web.Response:
        outcome = await self.reloader.reload(f"asked by {admin.agent_id}")
        status = 422 if outcome["status"] == "rejected" else 200
        return web.json_response({k: outcome[k] for k in ("status", "policy_hash")}
                                 | {"problems": outcome.get("problems", [])}, status=status)

    def routes(self, app: web.Application) -> None:
        add, wrap = app.router.add_route, self.endpoint
        add("POST", "/admin/rules/reload", wrap(self.reload_rules))
        add("GET", "/admin/approvals", wrap(self.approvals))
        add("GET", "/admin/approvals/{approval_id}", wrap(self.approval))
        add("POST", "/admin/approvals/{approval_id}/approve", wrap(self.approve))
        add("POST", "/admin/approvals/{approval_id}/deny", wrap(self.deny))
        add("GET", "/admin/agents", wrap(self.agents))
        add("POST", "/admin/agents/{agent_id}/kill", wrap(self.kill))
        add("DELETE", "/admin/agents/{agent_id}/kill", wrap(self.revive))


async def read_body(request: web.Request) -> dict[str, Any]:
    """An admin request's JSON object body (strict JSON; empty means {})."""
    try:
        raw = await read_body_within(request, request.app[GATEWAY_KEY].body_timeout_s)
    except BodyTimeout as exc:
        raise ProtocolError(408, str(exc), code="request_timeout") from None
    if raw and request.content_type != "application/json":
        raise ProtocolError(415, "Content-Type must be application/json, not "
                            f"{request.content_type or 'absent'}", code="unsupported_media_type")
    try:
        body = parse_json_bytes(raw) if raw else {}
    except JsonBodyError as exc:
        raise ProtocolError(400, f"the body must be a JSON object: {exc}",
                            code="invalid_json") from None
    if not isinstance(body, dict):
        raise ProtocolError(400, "the body must be a JSON object", code="invalid_request")
    return body


async def read_reason(request: web.Request) -> str:
    reason = (await read_body(request)).get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ProtocolError(400, "say why: {\"reason\": \"...\"} is required",
                            code="reason_required")
    return reason.strip()[:500]
