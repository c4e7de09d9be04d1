"""A real Anthropic-compatible HTTP server on loopback, standing in for Anthropic.

It answers /v1/messages like lictor's built-in local model (echo, `CALL` lines become
tool uses), streams Anthropic events when asked (with a `ping`), and records every
request so tests can assert what reached the upstream, headers included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from mock_openai import MockOpenAI

from lictor.adapters.backends import messages_via_chat
from lictor.adapters.backends.base import Route


async def _with_ping(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        yield event
        if event.get("type") == "message_start":
            yield {"type": "ping"}


class MockAnthropic(MockOpenAI):
    """Start with `with MockAnthropic() as upstream:`; `upstream.base_url` ends in /v1."""

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._received(request)
        if isinstance(body, web.Response):
            return web.json_response({"type": "error", "error": {
                "type": "api_error", "message": "mock failure"}}, status=body.status)
        route = Route(name=body["model"], backend="mock", upstream_model=body["model"])
        chat = messages_via_chat.to_chat(body)
        if not body.get("stream"):
            answer = await self._model.complete(chat, route)
            return web.json_response(messages_via_chat.from_chat(answer, body["model"]))
        chunks = self._model.stream({**chat, "stream_options": {"include_usage": True}}, route)
        events = messages_via_chat.events_from_chat(chunks, body["model"])
        return await self._sse(request, _with_ping(events))
