"""The admin API: operators act on running agents (the kill switch), authenticated with
admin keys that are not agent keys. Every action is audited with who did it and why.

    GET    /admin/agents                 agents and whether each is stopped
    POST   /admin/agents/{id}/kill       stop an agent at once   {"reason": "..."}
    DELETE /admin/agents/{id}/kill       let it run again        {"reason": "..."}
"""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from lictor.adapters.errors import ProtocolError
from lictor.enforcement.limits import kill_key
from lictor.enforcement.types import Principal
from lictor.proxy import audit_entries
from lictor.proxy.agent_keys import AgentKeys
from lictor.proxy.gateway import Gateway, error_response


class AdminApi:
    def __init__(self, gateway: Gateway, admin_keys: AgentKeys) -> None:
        self.gateway = gateway
        self.admin_keys = admin_keys

    def _admin(self, request: web.Request) -> Principal:
        admin = self.admin_keys.authenticate(request.headers.get("Authorization"))
        if admin is None:
            raise ProtocolError(401, "this endpoint needs an admin key "
                                "('Authorization: Bearer <admin key>')", code="invalid_admin_key")
        return admin

    def _agent(self, request: web.Request) -> Principal:
        agent_id = request.match_info["agent_id"]
        for principal in self.gateway.keys.principals:
            if principal.agent_id == agent_id:
                return principal
        raise ProtocolError(404, f"no agent {agent_id!r} is configured", code="agent_not_found")

    async def agents(self, request: web.Request) -> web.Response:
        rid = "adm_" + secrets.token_hex(12)
        try:
            self._admin(request)
        except ProtocolError as err:
            return error_response(err, rid)
        state = self.gateway.engine.limits.state
        return web.json_response({"agents": [
            {"id": p.agent_id, "team": p.team, "tenant": p.tenant,
             "stopped": state.switch(kill_key(p.agent_id))}
            for p in self.gateway.keys.principals
        ]})

    async def kill(self, request: web.Request) -> web.Response:
        return await self._switch(request, on=True)

    async def revive(self, request: web.Request) -> web.Response:
        return await self._switch(request, on=False)

    async def _switch(self, request: web.Request, on: bool) -> web.Response:
        rid = "adm_" + secrets.token_hex(12)
        try:
            admin = self._admin(request)
            agent = self._agent(request)
            reason = await _reason(request)
            self.gateway.engine.limits.state.set_switch(kill_key(agent.agent_id), on)
            self.gateway.append_records(audit_entries.admin_action(
                request_id=rid, admin=admin, action="kill" if on else "revive", agent=agent,
                reason=reason, policy_hash=self.gateway.engine.policy.content_hash))
        except ProtocolError as err:
            return error_response(err, rid)
        return web.json_response({"agent": agent.agent_id, "stopped": on, "reason": reason},
                                 headers={"x-lictor-request-id": rid})

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/agents", self.agents)
        app.router.add_post("/admin/agents/{agent_id}/kill", self.kill)
        app.router.add_delete("/admin/agents/{agent_id}/kill", self.revive)


async def _reason(request: web.Request) -> str:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise ProtocolError(400, "the body must be JSON: {\"reason\": \"...\"}",
                            code="invalid_json") from None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise ProtocolError(400, "say why: {\"reason\": \"...\"} is required",
                            code="reason_required")
    return reason.strip()[:500]
