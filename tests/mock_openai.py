"""A real OpenAI-compatible HTTP server on loopback, standing in for a model provider.

It answers like lictor's built-in local model (echo, `CALL` lines become tool calls),
streams when asked, and records every request it receives so tests can assert what
reached the upstream. Used by the tests and by `bench/`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lictor.adapters.backends.base import Route
from lictor.adapters.backends.local_model import LocalModelBackend
from lictor.adapters.sse import DONE, frame


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class MockOpenAI:
    """Start with `with MockOpenAI() as upstream:`; `upstream.base_url` ends in /v1."""

    fail_status: int | None = None  # answer every request with this error status
    received: list[Received] = field(default_factory=list)
    base_url: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._model = LocalModelBackend()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(Received(request.path, dict(request.headers), body))
        if self.fail_status is not None:
            return web.json_response(
                {"error": {"message": "mock failure", "type": "server_error", "code": None}},
                status=self.fail_status,
            )
        route = Route(name=body["model"], backend="mock", upstream_model=body["model"])
        if not body.get("stream"):
            return web.json_response(await self._model.complete(body, route))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for chunk in self._model.stream(body, route):
            await resp.write(frame(chunk))
        await resp.write(DONE)
        await resp.write_eof()
        return resp

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> MockOpenAI:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        async def _stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def last_text(self) -> str:
        """Everything the upstream received in its last request, as one string."""
        return json.dumps(self.received[-1].body, ensure_ascii=False)
