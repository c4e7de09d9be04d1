"""A tiny OpenAI-compatible model on loopback, so the examples run with no network.

It is lictor's built-in offline model (it echoes the last user message; each line
`CALL <tool> <json arguments>` becomes a tool call), plus one rule for agent loops: after a
tool result, it answers with that result, so a run ends.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lictor.adapters.backends.base import Route
from lictor.adapters.backends.local_model import LocalModelBackend
from lictor.proxy.server import AppThread


def _after_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    messages = body["messages"]
    if not messages or messages[-1].get("role") != "tool":
        return None
    content = messages[-1].get("content")
    text = content if isinstance(content, str) else str(content)
    return {"id": "chatcmpl-offline", "object": "chat.completion", "created": 0,
            "model": body["model"], "choices": [{
                "index": 0, "finish_reason": "stop", "logprobs": None,
                "message": {"role": "assistant", "content": f"The tool said: {text}"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class OfflineModel(AppThread):
    """`with OfflineModel() as model:` then use `model.base_url` as an OpenAI base_url."""

    def __init__(self) -> None:
        super().__init__(self._app, "127.0.0.1", 0)
        self._model = LocalModelBackend()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("stream"):
            return web.json_response({"error": {"message": "no streaming here"}}, status=400)
        answer = _after_tool(body) or await self._model.complete(
            body, Route(name=body["model"], backend="local", upstream_model=body["model"]))
        return web.json_response(answer)
