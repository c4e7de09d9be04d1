"""Admin endpoints for MCP tool pins (OWASP ASI04): review what servers serve, approve it.

    GET  /admin/mcp/tools                               every tool seen, its status and
                                                        the definition waiting for review
    POST /admin/mcp/tools/{server}/{tool}/approve       {"reason": "...", "digest": "..."}

`digest` is optional: given, the approval holds only if the server still serves the
definition the reviewer read. Admin keys only; every approval is audited with who and why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from lictor.adapters.errors import ProtocolError
from lictor.enforcement.types import Principal
from lictor.proxy import audit_entries
from lictor.proxy.admin_api import AdminApi, read_body, read_reason
from lictor.proxy.mcp_pins import PinConflict, PinStore, ToolPin


def _when(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def pin_record(pin: ToolPin) -> dict[str, Any]:
    return {
        "server": pin.server,
        "tool": pin.tool,
        "status": pin.status.value,
        "digest": pin.pinned_digest,
        "seen_digest": pin.seen_digest,
        "first_seen": _when(pin.first_seen),
        "approved_by": pin.approved_by,
        "approved_at": _when(pin.approved_at),
        "definition": pin.seen_definition,  # what the server serves now: what to review
    }


class McpAdminApi:
    """Beside `AdminApi`, behind its admin-key check: both refuse alike."""

    def __init__(self, admin: AdminApi, pins: PinStore) -> None:
        self.admin = admin
        self.pins = pins

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/mcp/tools", self.admin.endpoint(self.tools))
        app.router.add_post("/admin/mcp/tools/{server}/{tool}/approve",
                            self.admin.endpoint(self.approve))

    async def tools(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        return web.json_response({"tools": [pin_record(p) for p in self.pins.all()]})

    async def approve(self, request: web.Request, admin: Principal, rid: str) -> web.Response:
        server, tool = request.match_info["server"], request.match_info["tool"]
        gateway = self.admin.gateway
        reason = await read_reason(request)
        digest = (await read_body(request)).get("digest")
        if digest is not None and not isinstance(digest, str):
            raise ProtocolError(400, "`digest` must be a string", code="invalid_request")
        try:
            pin = self.pins.approvable(server, tool, digest)
        except KeyError as exc:
            raise ProtocolError(404, str(exc.args[0]), code="tool_not_found") from None
        except PinConflict as exc:
            raise ProtocolError(409, str(exc), code="conflict") from None
        # audited first: an approval that cannot be audited does not happen
        gateway.append_records(audit_entries.mcp_tool_approval(
            request_id=rid, admin=admin, server=server, tool=tool,
            digest=pin.seen_digest, previous=pin.pinned_digest, reason=reason,
            policy_hash=gateway.engine.policy.content_hash))
        pin = self.pins.approve(server, tool, admin.agent_id, pin.seen_digest)
        return web.json_response({**pin_record(pin), "reason": reason},
                                 headers={"x-lictor-request-id": rid})
