"""Forward to any OpenAI- or Anthropic-compatible base URL, streaming preserved: whole
answers over the lean HTTP/1.1 client (`http1.py`, about 0.5 ms less per call than
aiohttp's client here), streams over aiohttp's client.

lictor injects the upstream key from its own config (`Authorization: Bearer`, or for
Anthropic Messages `x-api-key` and `anthropic-version`); the agent's credentials never go
upstream. Upstream failures become protocol errors with a fitting status.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from lictor.adapters.backends.base import Route
from lictor.adapters.backends.http1 import (
    Http1Pool,
    Http1Response,
    UpstreamBroken,
    UpstreamUnreachable,
)
from lictor.adapters.errors import ProtocolError
from lictor.adapters.sse import SseFormatError, read_json_events

CHAT_PATH = "/chat/completions"
MESSAGES_PATH = "/messages"
_FORWARDED_STATUS = {400, 401, 403, 404, 409, 413, 422, 429}
A = TypeVar("A")  # an upstream answer: aiohttp's response or the lean client's
RETRY_STATUS = {429, 502, 503, 504}  # the upstream did not act on the request
MAX_RETRY_WAIT_S = 10.0  # a longer Retry-After goes back to the agent instead


def _backoff(route: Route, attempt: int) -> float:
    """Exponential backoff with full jitter (AWS's recommendation)."""
    return random.uniform(0, route.retry_backoff_s * 2 ** attempt)


def _retry_wait(route: Route, attempt: int, retry_after: str | None) -> float | None:
    """How long to wait before the next try, or None when the agent should be told now."""
    if retry_after is None:
        return _backoff(route, attempt)
    try:
        wait = float(retry_after)
    except ValueError:  # an HTTP date: too far ahead to hold the agent's request for
        return None
    return wait if 0 <= wait <= MAX_RETRY_WAIT_S else None


async def _retrying(route: Route, send: Callable[[], Awaitable[A]],
                    unreachable: type[Exception], answer: Callable[[A], tuple[int, str | None]],
                    discard: Callable[[A], None]) -> A:
    """`send`, again up to `route.retries` times when the upstream surely did not act: it
    could not be reached (`unreachable`), or it answered 429, 502, 503 or 504 (`answer` gives
    the status and Retry-After; `discard` lets go of an answer not kept)."""
    attempt = 0
    while True:
        try:
            resp = await send()
        except unreachable:
            if attempt >= route.retries:
                raise
            await asyncio.sleep(_backoff(route, attempt))
            attempt += 1
            continue
        status, retry_after = answer(resp)
        wait = (_retry_wait(route, attempt, retry_after)
                if status in RETRY_STATUS and attempt < route.retries else None)
        if wait is None:
            return resp
        discard(resp)
        await asyncio.sleep(wait)
        attempt += 1


def _upstream_error(status: int, payload: Any, retry_after: str | None) -> ProtocolError:
    message = ""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        message = str(payload["error"].get("message") or "")
    elif isinstance(payload, dict) and payload.get("type") == "error":  # a Responses event
        message = str(payload.get("message") or "")
    # Upstream auth failures are lictor's configuration problem, not the agent's key.
    if status in (401, 403):
        return ProtocolError(
            502,
            f"the upstream provider refused lictor's credentials ({status}): {message}",
            error_type="upstream_error",
            code="upstream_auth",
        )
    forwarded = status if status in _FORWARDED_STATUS else 502
    headers = {"Retry-After": retry_after} if retry_after and forwarded == 429 else None
    return ProtocolError(
        forwarded,
        f"upstream error {status}: {message or 'no message'}",
        error_type="upstream_error",
        code="upstream_error",
        headers=headers,
    )


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def _raise_for_status(resp: aiohttp.ClientResponse) -> None:
    if resp.status < 400:
        return
    raise _upstream_error(resp.status, _json_or_none(await resp.read()),
                          resp.headers.get("Retry-After"))


class PassthroughBackend:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None  # streams
        self._ssl: ssl.SSLContext | bool = ssl_context or True  # True: the default trust store
        self._whole = Http1Pool(ssl_context)  # whole answers: the lean client

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=self._ssl)
            self._session = aiohttp.ClientSession(  # one client for every agent: no cookies
                connector=connector, auto_decompress=True, trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    @asynccontextmanager
    async def _post(self, url: str, payload: bytes, headers: dict[str, str],
                    limits: aiohttp.ClientTimeout, route: Route
                    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST and check the status, retrying up to `route.retries` times only when the
        upstream surely did not act: it could not be reached, or it answered 429, 502,
        503 or 504 (honouring Retry-After up to MAX_RETRY_WAIT_S, with backoff)."""
        resp = await _retrying(
            route, lambda: self._client().post(url, data=payload, headers=headers,
                                               timeout=limits),
            aiohttp.ClientConnectorError,
            lambda r: (r.status, r.headers.get("Retry-After")), lambda r: r.release())
        try:
            await _raise_for_status(resp)
            yield resp
        finally:
            resp.release()

    async def _post_whole(self, url: str, payload: bytes, headers: dict[str, str],
                          route: Route) -> Http1Response:
        """POST for a whole answer, with `_post`'s retry policy: again only when the
        upstream surely did not act (not reached, or 429, 502, 503, 504)."""
        target = URL(url)

        async def send() -> Http1Response:
            async with asyncio.timeout(route.timeout_s):
                return await self._whole.post(target, payload, headers)

        return await _retrying(route, send, UpstreamUnreachable,
                               lambda r: (r.status, r.headers.get("retry-after")),
                               lambda r: None)

    @staticmethod
    def _prepare(body: dict[str, Any], route: Route,
                 path: str = CHAT_PATH) -> tuple[str, bytes, dict[str, str]]:
        url = route.base_url.rstrip("/") + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if path == MESSAGES_PATH:
            headers["anthropic-version"] = route.anthropic_version
            if route.api_key:
                headers["x-api-key"] = route.api_key
        elif route.api_key:
            headers["Authorization"] = f"Bearer {route.api_key}"
        payload = json.dumps({**body, "model": route.upstream_model}).encode()
        return url, payload, headers

    async def complete(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        return await self.forward(CHAT_PATH, body, route)

    def stream(self, body: dict[str, Any], route: Route) -> AsyncIterator[dict[str, Any]]:
        return self.forward_stream(CHAT_PATH, body, route)

    async def embed(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        return await self.forward("/embeddings", body, route)

    async def forward(self, path: str, body: dict[str, Any], route: Route) -> dict[str, Any]:
        """POST `body` to `path` under the route's base URL; the JSON answer."""
        url, payload, headers = self._prepare(body, route, path)
        try:
            resp = await self._post_whole(url, payload, headers, route)
        except TimeoutError:
            raise ProtocolError(504, "the upstream did not answer in time",
                                error_type="upstream_error", code="upstream_timeout") from None
        except (UpstreamUnreachable, UpstreamBroken) as exc:
            raise ProtocolError(502, f"cannot reach the upstream: {exc}",
                                error_type="upstream_error", code="upstream_unreachable") from None
        value = _json_or_none(resp.body)
        if resp.status >= 400:
            raise _upstream_error(resp.status, value, resp.headers.get("retry-after"))
        if not isinstance(value, dict):
            raise ProtocolError(502, "the upstream returned a body that is not JSON",
                                error_type="upstream_error")
        return value

    async def forward_stream(self, path: str, body: dict[str, Any],
                             route: Route) -> AsyncIterator[dict[str, Any]]:
        """POST `body` with `stream: true`; the upstream's events as they arrive."""
        url, payload, headers = self._prepare({**body, "stream": True}, route, path)
        headers["Accept"] = "text/event-stream"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=route.timeout_s)
        try:
            async with self._post(url, payload, headers, timeout, route) as resp:
                # chat streams end with `data: [DONE]`; Anthropic's and Responses' do not
                async for event in read_json_events(resp.content,
                                                    until_done=path == CHAT_PATH):
                    if isinstance(event.get("error"), dict) or event.get("type") == "error":
                        raise _upstream_error(500, event, None)
                    yield event
        except SseFormatError as exc:
            raise ProtocolError(502, str(exc), error_type="upstream_error") from None
        except TimeoutError:
            raise ProtocolError(504, "the upstream stream stalled",
                                error_type="upstream_error", code="upstream_timeout") from None
        except aiohttp.ClientError as exc:
            raise ProtocolError(502, f"upstream stream failed: {type(exc).__name__}",
                                error_type="upstream_error", code="upstream_unreachable") from None

    async def aclose(self) -> None:
        await self._whole.aclose()
        if self._session is not None:
            await self._session.close()
