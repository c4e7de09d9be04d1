"""A per-connection deadline for a request's headers (slowloris): aiohttp has none.

A connection gets `header_timeout_s` to send a request's complete headers, counted from
when it opens and, on a kept-alive connection, from the first byte of its next request (an
idle kept-alive connection is aiohttp's keep-alive timeout's business, not this one). Past
it the connection is closed, with a 408 first if it had sent part of a request. aiohttp
offers no hook for this, so a handler subclass reads two of its private fields
(`_request_count`, `_waiter`); `tests/test_header_deadline.py` breaks if they change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

_TIMED_OUT = b"lictor: the request headers did not arrive in time\n"
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(_TIMED_OUT), _TIMED_OUT))


class HeaderDeadlineHandler(RequestHandler):
    """aiohttp's connection handler, with a timer while a request's headers are awaited."""

    __slots__ = ("_header_begun", "_header_timeout_s", "_header_timer")

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_begun = False  # bytes of the awaited request arrived: a 408 is owed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        # before the first request, or idle between two: these bytes begin a request's headers
        waiter = self._waiter
        awaiting = self._request_count == 0 or (waiter is not None and not waiter.done())
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:  # a request's headers are complete
            self._disarm()
        elif data and awaiting:
            self._header_begun = True
            if self._header_timer is None:
                self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self._loop.call_later(self._header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_begun = False

    def _expire(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is not None and self._header_begun and not transport.is_closing():
            transport.write(REQUEST_TIMEOUT)  # no answer has begun: the request is incomplete
        self.force_close()


class HeaderDeadlineServer(web.Server):
    """aiohttp's low-level server, making `HeaderDeadlineHandler`s."""

    def __init__(self, made: web.Server, header_timeout_s: float) -> None:
        super().__init__(made.request_handler, request_factory=made.request_factory,
                         handler_cancellation=made.handler_cancellation,
                         loop=asyncio.get_running_loop(), **made._kwargs)
        self._header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        return HeaderDeadlineHandler(self, loop=self._loop,
                                     header_timeout_s=self._header_timeout_s, **self._kwargs)


class HeaderDeadlineRunner(web.AppRunner):
    """`web.AppRunner` whose connections have the header deadline."""

    def __init__(self, app: web.Application, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        return HeaderDeadlineServer(await super()._make_server(), self._header_timeout_s)
