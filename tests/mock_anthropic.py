"""A real Anthropic-compatible HTTP server on loopback, standing in for Anthropic.

It answers /v1/messages like lictor's built-in local model (echo, `CALL` lines become
tool uses), streams Anthropic events when asked (with a `ping`), and records every
request so tests can assert what reached the upstream, headers included. A test can
script the answer instead: `script` maps the request body to the answer's content blocks
(documents, provider-run tool results, any type), sent whole or streamed as Anthropic does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from mock_openai import MockOpenAI

from lictor.adapters.backends import messages_to_chat, messages_via_chat
from lictor.adapters.backends.base import Route
from lictor.adapters.backends.chat_request import leave_out


async def _with_ping(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        yield event
        if event.get("type") == "message_start":
            yield {"type": "ping"}


Script = Callable[[dict[str, Any]], list[dict[str, Any]]]


def _message(model: str, content: list[dict[str, Any]], stop: str | None) -> dict[str, Any]:
    return {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 5}}


def block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """One content block as Anthropic streams it: text (citations first), JSON inputs and
    thinking as deltas; any other block (a provider-run tool's result) whole in its start."""
    kind = block.get("type")
    start, deltas = block, []
    if kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [*({"type": "citations_delta", "citation": c}
                    for c in block.get("citations", [])),
                  {"type": "text_delta", "text": block["text"]}]
    elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
    elif kind == "thinking":
        start = {**block, "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
    return [{"type": "content_block_start", "index": index, "content_block": start},
            *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
            {"type": "content_block_stop", "index": index}]


async def _scripted_events(model: str, blocks: list[dict[str, Any]],
                           stop: str) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "message_start", "message": {**_message(model, [], None),
                                                "usage": {"input_tokens": 3,
                                                          "output_tokens": 0}}}
    for index, block in enumerate(blocks):
        for event in block_events(index, block):
            yield event
    yield {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
           "usage": {"output_tokens": 5}}
    yield {"type": "message_stop"}


class MockAnthropic(MockOpenAI):
    """Start with `with MockAnthropic() as upstream:`; `upstream.base_url` ends in /v1.
    Set `script` to answer with the content blocks it returns for the request body."""

    script: Script | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._received(request)
        if isinstance(body, web.Response):
            return web.json_response({"type": "error", "error": {
                "type": "api_error", "message": "mock failure"}}, status=body.status)
        if self.script is not None:
            blocks = self.script(body)
            stop = "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn"
            if not body.get("stream"):
                return web.json_response(_message(body["model"], blocks, stop))
            return await self._sse(request, _with_ping(
                _scripted_events(body["model"], blocks, stop)))
        route = Route(name=body["model"], backend="mock", upstream_model=body["model"])
        chat = messages_to_chat.to_chat(body, leave_out)  # a native API: answers from text
        if not body.get("stream"):
            answer = await self._model.complete(chat, route)
            return web.json_response(messages_via_chat.from_chat(answer, body["model"]))
        chunks = self._model.stream({**chat, "stream_options": {"include_usage": True}}, route)
        events = messages_via_chat.events_from_chat(chunks, body["model"])
        return await self._sse(request, _with_ping(events))
