"""Refusals as protocol-native errors (OpenAI's envelope; Anthropic's on /v1/messages): the
response for a ProtocolError, the error for a finding that stops an action, and the
middleware that turns anything else into one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lictor.adapters.anthropic_messages import error_body as anthropic_error_body
from lictor.adapters.errors import ProtocolError, openai_error_body
from lictor.enforcement.types import Finding, Verdict

log = logging.getLogger("lictor.gateway")


ErrorBody = Callable[[ProtocolError], dict[str, Any]]


def error_response(err: ProtocolError, request_id: str,
                   body: ErrorBody = openai_error_body) -> web.Response:
    """The error in the client's protocol (`body`: OpenAI's envelope unless told)."""
    headers = {"x-lictor-request-id": request_id, **err.headers}
    return web.json_response(body(err), status=err.status, headers=headers)


def error_body_for(path: str) -> ErrorBody:
    """The error envelope of the protocol served at `path`."""
    return anthropic_error_body if path.startswith("/v1/messages") else openai_error_body


def policy_error(finding: Finding, stage: str) -> ProtocolError:
    """403 naming the rule; 429 with Retry-After when the rule is a limit that was reached;
    403 `approval_required` when a human must approve first."""
    what = "request" if stage == "request" else "model response"
    if finding.verdict is Verdict.APPROVE:
        return ProtocolError(
            403,
            f"lictor holds this {what} for human approval: rule {finding.rule_id}: "
            f"{finding.message}",
            error_type="policy_violation",
            code="approval_required",
        )
    if finding.retry_after is not None:
        return ProtocolError(
            429,
            f"lictor refused this {what}: limit {finding.rule_id} reached: {finding.message}",
            error_type="rate_limit_exceeded",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(int(finding.retry_after + 0.999))},
        )
    return ProtocolError(
        403,
        f"lictor blocked this {what}: rule {finding.rule_id}: {finding.message}",
        error_type="policy_violation",
        code="policy_violation",
    )


@web.middleware
async def openai_errors_middleware(
    request: web.Request, handler: Any
) -> web.StreamResponse:
    """aiohttp's own 404/405 pages, and any unexpected failure, become OpenAI-format errors.

    A bug inside lictor answers 500 and releases nothing (fail closed).
    """
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = ProtocolError(exc.status, exc.reason, code=exc.reason.lower().replace(" ", "_"))
        return web.json_response(error_body_for(request.path)(err), status=exc.status)
    except Exception:
        log.exception("unexpected failure handling %s %s", request.method, request.path)
        err = ProtocolError(500, "lictor failed while handling this request; nothing was "
                            "passed on", error_type="server_error", code="internal_error")
        return web.json_response(error_body_for(request.path)(err), status=500)
