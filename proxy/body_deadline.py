"""A deadline for reading a request's body (a slow-body client): aiohttp has none.

`header_deadline` bounds a request's headers; once they are in, a client could send a
large body one byte a second and hold a handler. Every lictor surface that reads a body
reads it through `read_body_within`, which raises `BodyTimeout` past `limits.body_timeout_s`;
the surface answers in its own protocol and the connection is closed after that answer.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler


class BodyTimeout(Exception):
    """The body did not arrive within the deadline; `str()` says so, for the client."""


async def read_body_within(request: web.Request, timeout_s: float) -> bytes:
    """The request's whole body, or `BodyTimeout` if it takes longer than `timeout_s`."""
    if request.content.is_eof():  # already all here (nearly every request): no timer
        return await request.read()
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        _close_after_answer(request)
        raise BodyTimeout(f"the request body did not arrive within {timeout_s:g} s "
                          "(limits.body_timeout_s)") from None


def _close_after_answer(request: web.Request) -> None:
    """The answer goes out, then the connection closes at once: aiohttp would otherwise
    keep reading the rest of the body for its lingering time (10 s) first. Its lingering
    time is a private field (`tests/test_body_deadline.py` breaks if it changes)."""
    protocol = request.protocol
    if isinstance(protocol, RequestHandler):
        protocol._lingering_time = 0.0
