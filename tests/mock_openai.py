"""A real OpenAI-compatible HTTP server on loopback, standing in for a model provider.

It answers like lictor's built-in local model (echo, `CALL` lines become tool calls),
streams when asked, and records every request it receives so tests can assert what
reached the upstream. Used by the tests and by `bench/`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lictor.adapters.backends import responses_to_chat, responses_via_chat
from lictor.adapters.backends.base import Route
from lictor.adapters.backends.chat_request import leave_out
from lictor.adapters.backends.local_model import LocalModelBackend
from lictor.adapters.sse import DONE, frame, named_frame
from lictor.proxy.server import AppThread


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class MockOpenAI(AppThread):
    """Start with `with MockOpenAI() as upstream:`; `upstream.base_url` ends in /v1."""

    def __init__(self, fail_status: int | None = None,
                 ssl_context: ssl.SSLContext | None = None, set_cookie: str = "") -> None:
        super().__init__(self._app, "127.0.0.1", 0, ssl_context)
        self.fail_status = fail_status  # answer every request with this error status
        self.set_cookie = set_cookie  # a Set-Cookie header on every answer
        self.received: list[Received] = []
        # when set, the Responses API answers with these output items (provider-run tools'
        # calls and results, as a real provider sends them) instead of the local model's
        self.responses_output: list[dict[str, Any]] | None = None
        # when set, Chat Completions answer with this assistant message (a refusal, a search
        # model's citations, an audio transcript...), whole or streamed field by field
        self.chat_message: dict[str, Any] | None = None
        self._model = LocalModelBackend()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.on_response_prepare.append(self._cookie)
        return app

    async def _cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        if self.set_cookie:
            response.headers["Set-Cookie"] = self.set_cookie

    async def _received(self, request: web.Request) -> dict[str, Any] | web.Response:
        body = await request.json()
        self.received.append(Received(request.path, dict(request.headers), body))
        if self.fail_status is not None:
            return web.json_response(
                {"error": {"message": "mock failure", "type": "server_error", "code": None}},
                status=self.fail_status,
            )
        return body

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API, answered natively (the local model's answer, translated)."""
        body = await self._received(request)
        if isinstance(body, web.Response):
            return body
        if self.responses_output is not None:
            return await self._scripted_response(request, body, self.responses_output)
        route = Route(name=body["model"], backend="mock", upstream_model=body["model"])
        chat = responses_to_chat.to_chat(body, leave_out)  # a native API: answers from text
        if not body.get("stream"):
            answer = await self._model.complete(chat, route)
            return web.json_response(responses_via_chat.from_chat(answer, body["model"]))
        chunks = self._model.stream({**chat, "stream_options": {"include_usage": True}}, route)
        return await self._sse(request, responses_via_chat.events_from_chat(chunks,
                                                                             body["model"]))

    async def _scripted_response(self, request: web.Request, body: dict[str, Any],
                                 output: list[dict[str, Any]]) -> web.StreamResponse:
        """A Responses answer made of `output`, whole or as a stream of item events."""
        done = {"id": "resp_scripted", "object": "response", "created_at": 0,
                "model": body["model"], "status": "completed", "output": output,
                "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}
        if not body.get("stream"):
            return web.json_response(done)

        started = {**done, "status": "in_progress", "output": []}
        events = [{"type": "response.created", "response": started}]
        for oi, item in enumerate(output):
            if item.get("type") != "message":
                events.append({"type": "response.output_item.added", "output_index": oi,
                               "item": item})
            else:
                events += _message_events(oi, item)
            events.append({"type": "response.output_item.done", "output_index": oi,
                           "item": item})
        events.append({"type": "response.completed", "response": done})

        async def numbered() -> AsyncIterator[dict[str, Any]]:
            for n, event in enumerate(events):
                yield {**event, "sequence_number": n}

        return await self._sse(request, numbered())

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._received(request)
        if isinstance(body, web.Response):
            return body
        route = Route(name=body["model"], backend="mock", upstream_model=body["model"])
        return web.json_response(await self._model.embed(body, route))

    @staticmethod
    async def _sse(request: web.Request,
                   events: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
        """Events framed as OpenAI and Anthropic do: an `event:` line naming the type."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for event in events:
            await resp.write(named_frame(event))
        await resp.write_eof()
        return resp

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(Received(request.path, dict(request.headers), body))
        if self.fail_status is not None:
            return web.json_response(
                {"error": {"message": "mock failure", "type": "server_error", "code": None}},
                status=self.fail_status,
            )
        if self.chat_message is not None:
            return await self._scripted_chat(request, body, self.chat_message)
        route = Route(name=body["model"], backend="mock", upstream_model=body["model"])
        if not body.get("stream"):
            return web.json_response(await self._model.complete(body, route))
        return await self._chat_sse(request, self._model.stream(body, route))

    @staticmethod
    async def _chat_sse(request: web.Request,
                        chunks: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
        """Chunks framed as Chat Completions streams them: data lines, then [DONE]."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for chunk in chunks:
            await resp.write(frame(chunk))
        await resp.write(DONE)
        await resp.write_eof()
        return resp

    async def _scripted_chat(self, request: web.Request, body: dict[str, Any],
                             message: dict[str, Any]) -> web.StreamResponse:
        """A completion holding `message`; streamed, each string field comes in two halves
        (so a placeholder may be split across chunks) and any other field whole."""
        base = {"id": "chatcmpl-scripted", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            return web.json_response({
                **base, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", **message},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        for key, value in message.items():
            if isinstance(value, str):
                half = len(value) // 2
                deltas += [{key: value[:half]}, {key: value[half:]}]
            elif key == "audio" and isinstance(value.get("transcript"), str):
                half = len(value["transcript"]) // 2
                deltas += [{key: {**value, "transcript": value["transcript"][:half]}},
                           {key: {"transcript": value["transcript"][half:]}}]
            else:
                deltas.append({key: value})

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            for k, delta in enumerate(deltas):
                yield {**base, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": delta,
                     "finish_reason": "stop" if k == len(deltas) - 1 else None}]}

        return await self._chat_sse(request, chunks())

    def last_text(self) -> str:
        """Everything the upstream received in its last request, as one string."""
        return json.dumps(self.received[-1].body, ensure_ascii=False)


def _message_events(oi: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A message item's events as OpenAI streams them: each part added, its text (or
    refusal) in two deltas, its citations, the text done and the part done."""
    events: list[dict[str, Any]] = [{"type": "response.output_item.added", "output_index": oi,
                                     "item": {**item, "content": []}}]
    for ci, part in enumerate(item.get("content") or []):
        at = {"item_id": item.get("id"), "output_index": oi, "content_index": ci}
        field = "refusal" if part["type"] == "refusal" else "text"
        kind = "response.refusal" if field == "refusal" else "response.output_text"
        text = part[field]
        empty = {**part, field: "", **({"annotations": []} if field == "text" else {})}
        events += [{"type": "response.content_part.added", **at, "part": empty},
                   {"type": f"{kind}.delta", **at, "delta": text[: len(text) // 2]},
                   {"type": f"{kind}.delta", **at, "delta": text[len(text) // 2 :]}]
        events += [{"type": "response.output_text.annotation.added", **at, "annotation_index": k,
                    "annotation": a} for k, a in enumerate(part.get("annotations") or [])]
        events += [{"type": f"{kind}.done", **at, field: text},
                   {"type": "response.content_part.done", **at, "part": part}]
    return events
