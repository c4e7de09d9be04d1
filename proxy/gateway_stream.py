"""A streamed model answer, relayed through its protocol's governed stream: the first
event decides between an error and a stream; text flows as it comes; tool calls wait for
authorization (and approvals, with keep-alive comments); audit before the end is released."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lictor.adapters.errors import ProtocolError
from lictor.adapters.wire import GovernedStream
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Decision,
    Direction,
    Finding,
    Segment,
    ToolCall,
    Verdict,
    combine,
)
from lictor.proxy import audit_entries
from lictor.proxy.model_exchange import (
    Exchange,
    audit_choices,
    refused_after_checks,
    settle_approvals,
)
from lictor.proxy.openai_errors import policy_error

if TYPE_CHECKING:
    from lictor.proxy.gateway import Gateway

log = logging.getLogger("lictor.gateway")

KEEPALIVE_S = 10.0  # SSE comment interval while a streamed answer waits for an approval
CLIENT_GONE = ProtocolError(499, "the client disconnected mid-stream", code="client_disconnected")


def governed_stream(gw: Gateway, ex: Exchange) -> GovernedStream:
    """The wire's stream governor, checking with this exchange's principal and session."""
    engine, principal, timed = gw.engine, ex.principal, gw.telemetry.timed
    protocol = ex.wire.protocol

    def authorize(calls: list[ToolCall], segments: Sequence[Segment] = ()) -> Decision:
        action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, protocol,
                        tool_calls=calls, segments=list(segments))
        return timed(engine.evaluate_response, principal, action, ex.session)

    def check_text(text: str) -> list[Finding]:
        return timed(engine.scan_window, text, "response", "assistant")

    assert ex.wire.open_stream is not None
    return ex.wire.open_stream(ex.outcome.vault, check_text, authorize)


async def release_held(gw: Gateway, resp: web.StreamResponse, gov: GovernedStream,
                       ex: Exchange) -> list[dict[str, Any]]:
    """Settle a stream's calls that need approval (waiting in `hold` mode, with SSE
    comments to keep the connection open), then release them."""
    out: list[dict[str, Any]] = []
    while gov.held:
        held = gov.held.pop(0)
        action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE,
                        ex.wire.protocol, tool_calls=held.calls)
        settling = asyncio.ensure_future(settle_approvals(gw, ex, action, held.decision))
        try:
            while not settling.done():
                await asyncio.wait({settling}, timeout=KEEPALIVE_S)
                if not settling.done():
                    await resp.write(b": lictor is waiting for an approval\n\n")
        finally:
            settling.cancel()  # a client gone mid-wait stops the wait
        decision, _ = settling.result()
        out.extend(gov.release(held.index, held.calls, decision, held.finish))
    return out


async def relay(gw: Gateway, request: web.Request, ex: Exchange) -> web.StreamResponse:
    """Stream the answer to the agent, governed, and audit it before its end goes out."""
    wire = ex.wire
    gov = governed_stream(gw, ex)
    assert wire.stream is not None
    upstream = wire.stream(ex.backend, ex.body, ex.route)
    try:  # the first event decides between a JSON error and a stream
        first: dict[str, Any] | None = await anext(upstream, None)
    except ProtocolError as err:
        await upstream.aclose()  # type: ignore[attr-defined]
        return refused_after_checks(gw, ex, err, "upstream_error")
    gw.telemetry.responded(first)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "x-lictor-request-id": ex.rid,
    })
    await resp.prepare(request)
    failure = await pump(gw, resp, gov, upstream, first=first, ex=ex)
    finals: list[dict[str, Any]] = []
    if failure is None and gov.blocked is None:
        try:
            finals = gov.finish()
        except ProtocolError as err:  # the upstream stream was cut short
            failure = err
    if gov.held and failure is None:
        try:
            finals += await release_held(gw, resp, gov, ex)
        except ProtocolError as err:
            failure, finals = err, []
        except ConnectionError:
            failure, finals = CLIENT_GONE, []
    findings = list(gov.findings)
    verdict = (Verdict.BLOCK if failure is not None
               else gov.blocked.verdict if gov.blocked is not None else combine(findings))
    rdecision = Decision(
        verdict,
        findings,
        gw.engine.policy.content_hash,
        removed_tool_calls=gov.removed_tool_calls,
    )
    entry = audit_entries.model_response(
        request_id=ex.rid,
        principal=ex.principal,
        decision=rdecision,
        choices=audit_choices(gw, gov.audit_content()),
        usage=gov.usage,
    )
    if failure is not None:
        entry["stream_error"] = {"status": failure.status, "code": failure.code}
    try:
        gw.append_records(*ex.events, ex.request_record, entry)  # before calls and end
    except ProtocolError as err:
        failure, finals = err, []
    gw.engine.limits.record_usage(ex.principal, ex.session, wire.usage_tokens(gov.usage))
    if gov.blocked is not None:
        tail = [wire.error_frame(policy_error(gov.blocked, "response"))]
    elif failure is not None:
        tail = [wire.error_frame(failure)]
    else:
        tail = [wire.frame(out) for out in finals] + [wire.stream_end]
    try:  # the last frames and the end of the stream in one write
        await resp.write_eof(b"".join(tail))
    except ConnectionError:
        log.info("client of %s went away before the end of the stream", ex.rid)
    return resp


async def pump(
    gw: Gateway,
    resp: web.StreamResponse,
    gov: GovernedStream,
    upstream: AsyncIterator[dict[str, Any]],
    *,
    first: dict[str, Any] | None,
    ex: Exchange,
) -> ProtocolError | None:
    """Relay upstream events through `gov` until the end, a block, or a failure."""
    try:
        event = first
        while event is not None:
            outs = gov.feed(event)
            if gov.held:
                outs += await release_held(gw, resp, gov, ex)
            if outs:  # one write for what one upstream event released
                await resp.write(b"".join(map(ex.wire.frame, outs)))
            if gov.blocked is not None:
                break
            event = await anext(upstream, None)
    except ProtocolError as err:
        return err
    except ConnectionError:
        return CLIENT_GONE
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]
    return None
