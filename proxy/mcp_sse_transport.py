"""MCP's older HTTP+SSE transport (protocol 2024-11-05), governed like streamable HTTP.

The agent opens `GET /mcp/{server}/sse`; lictor opens the server's SSE stream with its own
headers and reads the server's first event, `endpoint`: the URL to POST messages to. The
agent is given lictor's own endpoint instead (`/mcp/{server}/messages?session_id=<id>`), so
every message it sends passes lictor: decided and audited like a streamable POST
(`McpProxy.admit`), then forwarded to the server's URL, which the agent never learns. Answers
arrive as `message` events on the stream; each is judged and audited for the request it
answers (`McpRelay.judge`) before it is relayed. A refused request is answered the way this
transport answers: a JSON-RPC error on the stream with the request's id, the POST a 202.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web

from lictor.adapters import mcp
from lictor.adapters.mcp import JsonRpcError, Kind, Message
from lictor.adapters.mcp_sse import KEEP_ALIVE, MessageTooLarge, SseEvent, SseParser
from lictor.enforcement.types import Principal
from lictor.proxy import audit_entries
from lictor.proxy.mcp_guard import Caller
from lictor.proxy.mcp_relay import (
    KEEP_ALIVE_S,
    MAX_MESSAGE_BYTES,
    Exchange,
    Upstream,
    audit_failure,
    audited,
    json_response,
    request_headers,
)

if TYPE_CHECKING:
    from lictor.proxy.mcp_proxy import McpProxy

log = logging.getLogger("lictor.mcp")

SESSION_PARAM = "session_id"  # what the MCP SDKs read a session id from in the endpoint URL
POLL_S = 1.0  # how often a quiet stream checks that its agent is still there


class SessionClosed(Exception):
    """The agent's stream is gone: nothing can be answered on it any more."""


@dataclass(slots=True)
class SseSession:
    """One agent's stream from one server, and the requests it waits to see answered."""

    id: str
    owner: Caller  # the agent that opened the stream: only it may post to the session
    upstream: Upstream
    request: web.Request  # the agent's GET
    post_url: str  # the server's own message endpoint, never shown to the agent
    out: web.StreamResponse
    # request id -> who sent it, its method, its tool: what its answer is judged for
    pending: dict[str, tuple[Caller, str, str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: bytes) -> None:
        """One whole event on the agent's stream: the relay and the POST handlers share it."""
        try:
            async with self.lock:
                await self.out.write(frame)
        except ConnectionError as exc:
            raise SessionClosed from exc

    def exchange(self, caller: Caller, pending: dict[str, tuple[str, str]]) -> Exchange:
        """What `McpRelay` judges and reports with: one caller and what it waits for."""
        return Exchange(caller, self.upstream, self.request, pending, reply_url=self.post_url,
                        session_key=self.id)


def _endpoint(base: str, data: str) -> str:
    """The server's message URL, resolved against its SSE URL; only on the server's own
    origin, since lictor posts there with its credentials for that server."""
    url = urljoin(base, data.strip())
    given, home = urlsplit(url), urlsplit(base)
    if (given.scheme, given.netloc) != (home.scheme, home.netloc):
        raise ValueError(f"its endpoint {url[:200]!r} is not on its own origin")
    return url


class SseTransport:
    """`GET /mcp/{server}/sse` and `POST /mcp/{server}/messages` for `transport: sse`."""

    def __init__(self, proxy: McpProxy) -> None:
        self.proxy = proxy
        self.relay = proxy.relay
        self.sessions: dict[tuple[str, str], SseSession] = {}
        self._streams: set[aiohttp.ClientResponse] = set()

    def routes(self, app: web.Application) -> None:
        # no HEAD: it would open a server session for a response that carries no events
        app.router.add_get("/mcp/{server}/sse", self.open_stream, allow_head=False)
        app.router.add_post("/mcp/{server}/messages", self.post_message)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        for resp in list(self._streams):  # server streams end, so their relays end
            resp.close()

    # -- the stream ---------------------------------------------------------------------

    async def open_stream(self, request: web.Request) -> web.StreamResponse:
        rid = "mcp_" + secrets.token_hex(12)
        principal: Principal | None = None
        try:
            principal = self.proxy.authenticate(request)
            upstream = self.proxy.find_upstream(request, "sse")
        except JsonRpcError as err:
            return self.proxy.reject(request, rid, principal, err)
        caller = self.proxy.caller(request, rid, principal, upstream)
        decision = self.proxy.guard.check_session(principal, caller.session)
        failed = audited(self.proxy.gateway, audit_entries.mcp_request(
            request_id=rid, principal=principal, server=upstream.config.name,
            message="get_stream", method="", tool="", decision=decision, content=[]), None)
        if failed is not None:
            return failed
        refusal = self.proxy.guard.refusal(decision, "MCP stream", None, rid)
        if refusal is not None:
            return json_response(refusal.body(), refusal.status, request_headers(rid))
        return await self._connect(Exchange(caller, upstream, request))

    async def _connect(self, ex: Exchange) -> web.StreamResponse:
        config = ex.upstream.config
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.timeout_s,
                                        sock_read=None)
        try:
            resp = await self.relay.client().get(
                config.url, allow_redirects=False, timeout=timeout,
                headers={"Accept": "text/event-stream", **ex.upstream.headers})
        except (aiohttp.ClientError, TimeoutError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            return self.relay.failed(ex, None, 504 if timed_out else 502,
                                     f"cannot reach MCP server {config.name!r}: "
                                     f"{'no answer in time' if timed_out else type(exc).__name__}")
        self._streams.add(resp)
        try:
            if resp.status >= 300:
                return await self.relay.upstream_status(ex, resp, None, request_headers(ex.rid))
            if resp.content_type != "text/event-stream":
                return self.relay.failed(ex, None, 502, f"MCP server {config.name!r} answered "
                                         f"{resp.content_type}, not an SSE stream")
            parser = SseParser(MAX_MESSAGE_BYTES)
            try:
                post_url, early = await asyncio.wait_for(self._read_endpoint(resp, parser),
                                                         config.timeout_s)
            except TimeoutError:
                return self.relay.failed(ex, None, 504, f"MCP server {config.name!r} sent no "
                                         "endpoint event in time")
            except (aiohttp.ClientError, MessageTooLarge, UnicodeDecodeError,
                    ValueError) as exc:
                return self.relay.failed(ex, None, 502, f"MCP server {config.name!r}: "
                                         f"{str(exc)[:200] or type(exc).__name__}")
            return await self._serve(ex, resp, parser, post_url, early)
        finally:
            self._streams.discard(resp)
            resp.release()

    async def _read_endpoint(self, resp: aiohttp.ClientResponse,
                             parser: SseParser) -> tuple[str, list[SseEvent]]:
        """The server's message URL, and any events that came after it in the same read."""
        while True:
            chunk = await resp.content.readany()
            events = parser.feed(chunk) if chunk else parser.close()
            for i, event in enumerate(events):
                if event.event == "endpoint":
                    return _endpoint(str(resp.url), event.data), events[i + 1 :]
            if not chunk:
                raise ValueError("the stream ended before its endpoint event")

    async def _serve(self, ex: Exchange, resp: aiohttp.ClientResponse, parser: SseParser,
                     post_url: str, early: list[SseEvent]) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                          "Cache-Control": "no-cache",
                                          **request_headers(ex.rid)})
        await out.prepare(ex.request)
        name = ex.upstream.config.name
        session = SseSession(secrets.token_urlsafe(24), ex.caller, ex.upstream, ex.request,
                             post_url, out)
        key = (name, session.id)
        self.sessions[key] = session  # before the agent can learn its URL and post to it
        try:
            await session.send(SseEvent(f"/mcp/{name}/messages?{SESSION_PARAM}={session.id}",
                                        event="endpoint").frame())
            failure = await self._pump(session, resp, parser, early)
            waiting = {k: (method, tool) for k, (_, method, tool) in session.pending.items()}
            session.pending.clear()
            if waiting:
                for frame in self.relay.stream_failed(session.exchange(ex.caller, waiting),
                                                      failure or "the stream ended"):
                    await session.send(frame)
            await out.write_eof()
        except (SessionClosed, ConnectionError):
            log.info("%s: the agent left an MCP SSE session", ex.rid)
        finally:
            self.sessions.pop(key, None)
        return out

    async def _pump(self, session: SseSession, resp: aiohttp.ClientResponse,
                    parser: SseParser, events: list[SseEvent]) -> str:
        """Relay judged events until the server ends the stream; what failed, if it did.

        The server is polled in short steps so an agent that left is noticed within one
        (its transport is gone), and its server session closed, not kept until a write fails;
        an idle stream still gets a keep-alive every KEEP_ALIVE_S."""
        ended, idle = False, 0.0
        while True:
            for event in events:
                frame = await self._judge(session, event)
                if frame:
                    await session.send(frame)
            if ended:
                return ""
            try:
                chunk = await asyncio.wait_for(resp.content.readany(), POLL_S)
            except aiohttp.ClientError as exc:
                return f"the stream failed: {type(exc).__name__}"
            except TimeoutError:
                if session.request.transport is None:
                    raise SessionClosed from None
                idle += POLL_S
                if idle >= KEEP_ALIVE_S:
                    await session.send(KEEP_ALIVE)
                    idle = 0.0
                events = []
                continue
            idle = 0.0
            try:
                events = parser.feed(chunk) if chunk else parser.close()
            except (MessageTooLarge, UnicodeDecodeError) as exc:
                return f"the stream failed: {exc}"
            ended = not chunk

    async def _judge(self, session: SseSession, event: SseEvent) -> bytes:
        """A server's event as the agent gets it: a response judged for the request it
        answers, by whom it was sent, a request of the server's own judged (and refused to
        the server if it must be); anything but a JSON-RPC `message` is dropped."""
        name = session.upstream.config.name
        if event.event != "message" or not event.data.strip():
            if event.event != "message":
                log.warning("%s: dropped a %r event from MCP server %r", session.owner.request_id,
                            event.event[:40], name)
            return b""
        try:
            answer = mcp.parse_message(json.loads(event.data), status=502)
        except (ValueError, JsonRpcError):
            log.warning("%s: dropped an SSE event from MCP server %r that is not a JSON-RPC "
                        "message", session.owner.request_id, name)
            return b""
        caller, pending = session.owner, {}
        if answer.kind is Kind.RESPONSE:
            key = mcp.id_key(answer.id)
            caller, method, tool = session.pending.pop(key, (session.owner, "", ""))
            pending[key] = (method, tool)
        body = await self.relay.judge_message(session.exchange(caller, pending), answer)
        return b"" if body is None else SseEvent(mcp.dump(body).decode()).frame()

    # -- messages -----------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.StreamResponse:
        rid = "mcp_" + secrets.token_hex(12)
        principal: Principal | None = None
        try:
            principal = self.proxy.authenticate(request)
            upstream = self.proxy.find_upstream(request, "sse")
            session = self._session(request, upstream, principal)
            message = mcp.parse_body(await self.proxy.read_body(request))
            if message.kind is Kind.REQUEST and mcp.id_key(message.id) in session.pending:
                raise JsonRpcError(mcp.INVALID_REQUEST, f"request id {message.id!r} is still "
                                   "waiting for its answer in this session", status=400)
            return await self._post(request, rid, session, message)
        except JsonRpcError as err:
            return self.proxy.reject(request, rid, principal, err)

    def _session(self, request: web.Request, upstream: Upstream,
                 principal: Principal) -> SseSession:
        name = upstream.config.name
        sid = request.query.get(SESSION_PARAM, "")
        if not sid:
            raise JsonRpcError(mcp.INVALID_REQUEST, f"`{SESSION_PARAM}` is required: post to "
                               "the URL of the stream's endpoint event", status=400)
        session = self.sessions.get((name, sid))
        if session is None:
            raise JsonRpcError(mcp.INVALID_REQUEST, f"no open SSE session {sid[:64]!r} with "
                               f"MCP server {name!r}: open /mcp/{name}/sse first", status=404)
        if session.owner.principal.agent_id != principal.agent_id:
            raise JsonRpcError(mcp.POLICY_BLOCKED, "this MCP session was opened by another "
                               "agent", status=403)
        return session

    async def _post(self, request: web.Request, rid: str, session: SseSession,
                    message: Message) -> web.StreamResponse:
        caller = self.proxy.caller(request, rid, session.owner.principal, session.upstream)
        checked = await self.proxy.admit(request, caller, message, session.id)
        if checked.refusal is not None:
            return await self._answer(session, checked.refusal, rid)
        key = mcp.id_key(message.id)
        if message.kind is Kind.REQUEST:
            session.pending[key] = (caller, message.method, checked.tool)
        failed = await self._forward(session, caller, checked.substitute or message)
        if failed is not None:
            if message.kind is Kind.REQUEST:
                session.pending.pop(key, None)
            return await self._answer(session, failed, rid)
        return web.Response(status=202, text="Accepted", headers=request_headers(rid))

    async def _answer(self, session: SseSession, err: JsonRpcError,
                      rid: str) -> web.Response:
        """lictor's own answer: to a request, on the stream (how this transport answers),
        the POST accepted; to anything else, or a session whose stream is gone, the POST's."""
        if err.status == 200 and err.id is not None:
            try:
                await session.send(SseEvent(mcp.dump(err.body()).decode()).frame())
            except SessionClosed:
                err = JsonRpcError(mcp.INVALID_REQUEST, "this SSE session's stream has closed",
                                   status=404)
            else:
                return web.Response(status=202, text="Accepted", headers=request_headers(rid))
        return json_response(err.body(), err.status, request_headers(rid))

    async def _forward(self, session: SseSession, caller: Caller,
                       message: Message) -> JsonRpcError | None:
        """Post the checked message to the server's endpoint; the error to answer if the
        server did not accept it (audited)."""
        config = session.upstream.config
        try:
            async with self.relay.client().post(
                    session.post_url, data=message.wire(), allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=config.timeout_s),
                    headers={"Content-Type": "application/json", **session.upstream.headers},
            ) as resp:
                await resp.read()
                if resp.status < 300:
                    return None
                status = 502 if resp.status in (401, 403) or resp.status < 400 else resp.status
                reason = f"MCP server {config.name!r} answered HTTP {resp.status} to a message"
        except (aiohttp.ClientError, TimeoutError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            status = 504 if timed_out else 502
            reason = (f"cannot reach MCP server {config.name!r}: "
                      f"{'no answer in time' if timed_out else type(exc).__name__}")
        entry = self.relay.upstream_error(session.exchange(caller, {}), status, reason)
        failed = audit_failure(self.proxy.gateway, entry, message)
        if failed is not None:
            return failed
        request = message.kind is Kind.REQUEST
        return JsonRpcError(mcp.UPSTREAM_FAILED, reason, status=200 if request else status,
                            id=message.id if request else None)
