"""Forwards a checked MCP message to its server and relays every answer back, judged.

Answers come whole (`application/json`) or as an SSE stream; in a stream each JSON-RPC
message is judged on its own, and event ids, names and `retry` are kept so a client can
resume. Every response is judged (`McpGuard.judge`) and audited before the agent sees it;
so is every request of the server's own (sampling, elicitation: `McpGuard.judge_server_request`),
and one refused never reaches the agent: lictor answers the server with the JSON-RPC error.
Notifications are judged too, and a failing one is dropped. The server's HTTP errors are
relayed with their status (a 404 tells an MCP client its session is gone).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from lictor.adapters import mcp
from lictor.adapters.errors import ProtocolError
from lictor.adapters.mcp import JsonRpcError, Kind, Message
from lictor.adapters.mcp_sse import KEEP_ALIVE, MessageTooLarge, SseEvent, SseParser
from lictor.enforcement.types import Principal
from lictor.proxy import audit_entries
from lictor.proxy.config import McpServerConfig
from lictor.proxy.gateway import Gateway
from lictor.proxy.mcp_guard import Caller, McpGuard, ServerRequests, SessionOwners

log = logging.getLogger("lictor.mcp")

SESSION_ID = "Mcp-Session-Id"
PROTOCOL_VERSION = "MCP-Protocol-Version"
LAST_EVENT_ID = "Last-Event-ID"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one JSON-RPC message from a server
KEEP_ALIVE_S = 15.0  # an idle stream gets a comment: a client that went away is noticed


@dataclass(slots=True, frozen=True)
class Upstream:
    config: McpServerConfig
    headers: dict[str, str]  # lictor's own (its credential); never the agent's


@dataclass(slots=True)
class Exchange:
    """One HTTP request of an agent to one server, and the requests awaiting an answer."""

    caller: Caller
    upstream: Upstream
    request: web.Request
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> method, tool
    reply_url: str = ""  # where the server takes the agent's messages ("": its own URL)
    session_key: str = ""  # the session its own requests belong to ("": Mcp-Session-Id)

    @property
    def rid(self) -> str:
        return self.caller.request_id

    @property
    def server_session(self) -> str:
        """The server's session (not the agent's x-lictor-session)."""
        return self.session_key or self.request.headers.get(SESSION_ID, "")

    @property
    def principal(self) -> Principal:
        return self.caller.principal


def json_response(body: dict[str, object], status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=mcp.dump(body), status=status, content_type="application/json",
                        headers=headers)


def request_headers(rid: str) -> dict[str, str]:
    return {"x-lictor-request-id": rid}


def audit_unavailable(exc: ProtocolError, message: Message | None) -> JsonRpcError:
    """The error to answer when the log cannot be written (for a request, a JSON-RPC error
    the client's SDK raises; else 503)."""
    request = message is not None and message.kind is Kind.REQUEST
    return JsonRpcError(mcp.AUDIT_UNAVAILABLE, exc.message,
                        id=message.id if request and message else None,
                        status=200 if request else 503)


def audit_failure(gateway: Gateway, entry: dict[str, object],
                  message: Message | None) -> JsonRpcError | None:
    """Audit before anything moves on; if the log cannot be written, nothing does: the error
    to answer instead."""
    try:
        gateway.append_records(entry)
    except ProtocolError as exc:
        return audit_unavailable(exc, message)
    return None


def audited(gateway: Gateway, entry: dict[str, object],
            message: Message | None) -> web.Response | None:
    """`audit_failure` as the HTTP answer to send instead, if there is one."""
    err = audit_failure(gateway, entry, message)
    return None if err is None else json_response(err.body(), err.status)


class McpRelay:
    """lictor's side of the conversation with MCP servers: one HTTP client for all."""

    def __init__(self, gateway: Gateway, guard: McpGuard, owners: SessionOwners) -> None:
        self.gateway = gateway
        self.guard = guard
        self.owners = owners
        self.asked = ServerRequests()  # what the servers' own requests passed on await
        self._client: aiohttp.ClientSession | None = None
        self._open: set[aiohttp.ClientResponse] = set()

    async def shutdown(self, app: web.Application) -> None:
        for resp in list(self._open):  # open server streams end, so their relays end
            resp.close()

    async def cleanup(self, app: web.Application) -> None:
        if self._client is not None:
            await self._client.close()

    def client(self) -> aiohttp.ClientSession:
        """The one HTTP client for every server (both transports), made in the running loop."""
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(  # shared by every agent: keeps no cookies
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=True, trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar())
        return self._client

    def _headers(self, ex: Exchange, has_body: bool, answering: bool = False) -> dict[str, str]:
        """What goes to the server with the agent's message, or (`answering`) with lictor's
        own answer to a server's request: a POST that resumes no stream."""
        accept = "text/event-stream" if ex.request.method == "GET" and not answering else \
            "application/json, text/event-stream"
        headers = {"Accept": accept, **ex.upstream.headers}
        if has_body:
            headers["Content-Type"] = "application/json"
        for name in (SESSION_ID, PROTOCOL_VERSION) if answering else (
                SESSION_ID, PROTOCOL_VERSION, LAST_EVENT_ID):
            value = ex.request.headers.get(name)
            if value:
                headers[name] = value
        return headers

    async def forward(self, ex: Exchange, body: bytes | None,
                       message: Message | None) -> web.StreamResponse:
        config = ex.upstream.config
        idle = None if ex.request.method == "GET" else config.timeout_s  # a GET stream may idle
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.timeout_s, sock_read=idle)
        try:
            resp = await self.client().request(
                ex.request.method, config.url, data=body, allow_redirects=False,
                headers=self._headers(ex, body is not None), timeout=timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            return self.failed(ex, message, 504 if timed_out else 502,
                                f"cannot reach MCP server {config.name!r}: "
                                f"{'no answer in time' if timed_out else type(exc).__name__}")
        self._open.add(resp)
        try:
            return await self._relay(ex, resp, message)
        finally:
            self._open.discard(resp)
            resp.release()

    def upstream_error(self, ex: Exchange, status: int, reason: str) -> dict[str, object]:
        """The audit entry for a server that failed `ex`'s caller."""
        return audit_entries.refused(
            kind="upstream_error", request_id=ex.rid, principal=ex.principal, status=status,
            code=str(mcp.UPSTREAM_FAILED), reason=reason,
            policy_hash=self.gateway.engine.policy.content_hash)

    def failed(self, ex: Exchange, message: Message | None, status: int,
                reason: str) -> web.Response:
        """The upstream failed: audited, then a JSON-RPC error (HTTP 200 for a request)."""
        failed = audited(self.gateway, self.upstream_error(ex, status, reason), message)
        if failed is not None:
            return failed
        request = message is not None and message.kind is Kind.REQUEST
        err = JsonRpcError(mcp.UPSTREAM_FAILED, reason, status=200 if request else status,
                           id=message.id if request and message else None)
        return json_response(err.body(), err.status, request_headers(ex.rid))

    async def _relay(self, ex: Exchange, resp: aiohttp.ClientResponse,
                     message: Message | None) -> web.StreamResponse:
        name = ex.upstream.config.name
        headers = request_headers(ex.rid)
        for header in (SESSION_ID, PROTOCOL_VERSION):
            if header in resp.headers:
                headers[header] = resp.headers[header]
        if SESSION_ID in resp.headers:
            self.owners.bind(name, resp.headers[SESSION_ID], ex.principal.agent_id)
        if resp.status >= 300:
            return await self.upstream_status(ex, resp, message, headers)
        if resp.content_type == "text/event-stream":
            return await self._relay_stream(ex, resp, headers)
        try:
            raw = await _read_capped(resp)
        except (aiohttp.ClientError, TimeoutError, MessageTooLarge) as exc:
            return self.failed(ex, message, 502, f"MCP server {name!r} failed mid-answer: "
                                f"{type(exc).__name__}")
        if not raw.strip():
            return web.Response(status=resp.status, headers=headers)
        try:
            if resp.content_type != "application/json":
                raise ValueError(f"unexpected content type {resp.content_type}")
            answer = mcp.parse_message(json.loads(raw), status=502)
        except (ValueError, UnicodeDecodeError, JsonRpcError) as exc:
            return self.failed(ex, message, 502, f"MCP server {name!r} sent an answer that "
                                f"is not a JSON-RPC message ({str(exc)[:120]})")
        body = await self.judge_message(ex, answer)
        if body is None:
            return self.failed(ex, message, 502, f"MCP server {name!r} answered with a "
                               "request or notification lictor refused")
        return json_response(body, resp.status, headers)

    async def upstream_status(self, ex: Exchange, resp: aiohttp.ClientResponse,
                               message: Message | None, headers: dict[str, str]) -> web.Response:
        """The server's HTTP error, relayed with its status (a 404 tells an MCP client its
        session is gone); its own credentials failing or a redirect are lictor's 502."""
        detail = ""
        try:
            error = json.loads(await _read_capped(resp)).get("error")
            detail = str(error.get("message"))[:200] if isinstance(error, dict) else ""
        except (ValueError, AttributeError, aiohttp.ClientError, TimeoutError, MessageTooLarge):
            pass
        status = 502 if resp.status in (401, 403) or resp.status < 400 else resp.status
        reason = f"MCP server {ex.upstream.config.name!r} answered HTTP {resp.status}" + (
            f": {self.gateway.engine.redact(detail)}" if detail else "")
        failed = audited(self.gateway, self.upstream_error(ex, status, reason), message)
        if failed is not None:
            return failed
        ident = message.id if message is not None and message.kind is Kind.REQUEST else None
        err = JsonRpcError(mcp.UPSTREAM_FAILED, reason, id=ident)
        return json_response(err.body(), status, headers)

    async def judge_message(self, ex: Exchange, answer: Message) -> dict[str, object] | None:
        """A server's message as the agent gets it (None: it does not get it): responses
        and the server's own requests and notifications judged and audited first."""
        if answer.kind is Kind.REQUEST:
            return await self.server_request(ex, answer)
        if answer.kind is Kind.NOTIFICATION:
            return self.notification(ex, answer)
        return self.judge(ex, answer)

    def notification(self, ex: Exchange, note: Message) -> dict[str, object] | None:
        """A server's notification, judged: None when dropped (an injection, a secret; it
        has no reply). One a rule matched is audited; if that fails, it is dropped too."""
        judged = self.gateway.telemetry.timed(self.guard.judge_notification, ex.caller, note)
        if not judged.decision.findings:
            return judged.body
        try:
            self.gateway.append_records(audit_entries.mcp_server_notification(
                request_id=ex.rid, principal=ex.principal, server=ex.upstream.config.name,
                method=note.method, decision=judged.decision, dropped=judged.withheld,
                content=judged.content))
        except ProtocolError:
            log.error("%s: audit unavailable: a notification from MCP server %r is dropped",
                      ex.rid, ex.upstream.config.name)
            return None
        if judged.withheld:
            log.info("%s: dropped a notification from MCP server %r (audited)", ex.rid,
                     ex.upstream.config.name)
            return None
        return judged.body

    async def server_request(self, ex: Exchange, request: Message) -> dict[str, object] | None:
        """A server's own request (sampling, elicitation, ...), judged and audited: None
        when refused, and the server is answered lictor's JSON-RPC error instead."""
        config = ex.upstream.config
        judged = self.gateway.telemetry.timed(self.guard.judge_server_request, ex.caller,
                                              request)
        body = judged.body
        try:
            self.gateway.append_records(audit_entries.mcp_server_request(
                request_id=ex.rid, principal=ex.principal, server=config.name,
                method=request.method, decision=judged.decision, refused=judged.withheld,
                content=judged.content))
        except ProtocolError as exc:
            body = JsonRpcError(mcp.AUDIT_UNAVAILABLE, exc.message, id=request.id).body()
            judged.withheld = True
        if not judged.withheld:
            self.asked.add(config.name, ex.server_session, request)
            return body
        await self.answer_server(ex, body)
        return None

    async def answer_server(self, ex: Exchange, body: dict[str, object]) -> None:
        """lictor's own answer to a server's request, sent where the agent's would go."""
        config = ex.upstream.config
        try:
            async with self.client().post(
                    ex.reply_url or config.url, data=mcp.dump(body),
                    headers=self._headers(ex, True, answering=True),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=config.timeout_s)) as resp:
                await resp.read()
                if resp.status < 300:
                    return
                why = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            why = type(exc).__name__
        log.warning("%s: MCP server %r did not take lictor's refusal of its request: %s",
                    ex.rid, config.name, why)

    def judge(self, ex: Exchange, answer: Message) -> dict[str, object]:
        """A response as the agent gets it, judged and audited first (`judge_message` is
        the way in for every message)."""
        method, tool = ex.pending.pop(mcp.id_key(answer.id), ("", ""))
        config = ex.upstream.config
        judged = self.gateway.telemetry.timed(self.guard.judge, ex.caller, method, answer.body)
        try:
            self.gateway.append_records(audit_entries.mcp_result(
                request_id=ex.rid, principal=ex.principal, server=config.name, method=method,
                tool=tool, decision=judged.decision, hidden_tools=judged.hidden,
                withheld=judged.withheld, content=judged.content))
        except ProtocolError as exc:
            return JsonRpcError(mcp.AUDIT_UNAVAILABLE, exc.message, id=answer.id).body()
        return judged.body

    async def judge_event(self, ex: Exchange, event: SseEvent) -> bytes:
        if not event.data.strip():
            return event.frame()  # a priming event: an id to resume from, no message
        try:
            answer = mcp.parse_message(json.loads(event.data), status=502)
        except (ValueError, JsonRpcError):
            log.warning("%s: dropped an SSE event from MCP server %r that is not a JSON-RPC "
                        "message", ex.rid, ex.upstream.config.name)
            return b""
        body = await self.judge_message(ex, answer)
        return b"" if body is None else event.frame(mcp.dump(body).decode())

    async def _relay_stream(self, ex: Exchange, resp: aiohttp.ClientResponse,
                            headers: dict[str, str]) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                          "Cache-Control": "no-cache", **headers})
        await out.prepare(ex.request)
        try:
            failure = await self._pump(ex, resp, out)
            if ex.pending and not failure:
                failure = "the stream ended without an answer"
            if failure:
                for frame in self.stream_failed(ex, failure):
                    await out.write(frame)
            await out.write_eof()
        except ConnectionError:
            log.info("%s: the agent left an MCP stream before its end", ex.rid)
        return out

    async def _pump(self, ex: Exchange, resp: aiohttp.ClientResponse,
                    out: web.StreamResponse) -> str:
        """Relay judged events until the server ends the stream; what failed, if it did."""
        parser = SseParser(MAX_MESSAGE_BYTES)
        while True:
            try:
                chunk = await asyncio.wait_for(resp.content.readany(), KEEP_ALIVE_S)
            except aiohttp.ClientError as exc:  # the server's read timeout included
                return f"the stream failed: {type(exc).__name__}"
            except TimeoutError:
                await out.write(KEEP_ALIVE)
                continue
            try:
                events = parser.feed(chunk) if chunk else parser.close()
            except (MessageTooLarge, UnicodeDecodeError) as exc:
                return f"the stream failed: {exc}"
            for event in events:
                data = await self.judge_event(ex, event)
                if data:
                    await out.write(data)
            if not chunk:
                return ""

    def stream_failed(self, ex: Exchange, why: str) -> list[bytes]:
        """Audited; each request still waiting gets its JSON-RPC error in the stream."""
        reason = f"MCP server {ex.upstream.config.name!r}: {why}"
        try:
            self.gateway.append_records(self.upstream_error(ex, 502, reason))
        except ProtocolError:
            log.error("%s: audit unavailable while reporting a failed stream", ex.rid)
        frames = [SseEvent(mcp.dump(JsonRpcError(mcp.UPSTREAM_FAILED, reason,
                                                 id=json.loads(key)).body()).decode()).frame()
                  for key in ex.pending]
        ex.pending.clear()
        return frames


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"the answer is larger than {MAX_MESSAGE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
