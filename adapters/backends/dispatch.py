"""Serving each wire protocol from a route's backend: natively through passthrough (the
upstream speaks it), or through Chat Completions for the local model and LiteLLM Router.

The translation to chat runs in `prepare`, before anything is sent, so what chat cannot
carry is refused (400, in the agent's protocol) while the request can still be refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from lictor.adapters.backends import (
    messages_to_chat,
    messages_via_chat,
    responses_to_chat,
    responses_via_chat,
)
from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.backends.chat_request import Refuse, refuser
from lictor.adapters.backends.passthrough import MESSAGES_PATH, PassthroughBackend

ToEvents = Callable[[AsyncIterator[dict[str, Any]], str], AsyncIterator[dict[str, Any]]]


class ViaChat:
    """One non-chat protocol: its upstream path, and its translation to and from chat."""

    __slots__ = ("events_from_chat", "from_chat", "path", "to_chat")

    def __init__(self, path: str, to_chat: Callable[[dict[str, Any], Refuse], dict[str, Any]],
                 from_chat: Callable[[dict[str, Any], str], dict[str, Any]],
                 events_from_chat: ToEvents) -> None:
        self.path = path
        self.to_chat = to_chat
        self.from_chat = from_chat
        self.events_from_chat = events_from_chat

    def prepare(self, backend: Backend, body: dict[str, Any], route: Route) -> dict[str, Any]:
        """The body as `backend` takes it: unchanged for passthrough, else the chat request
        (ProtocolError 400 for what chat cannot carry). `complete` and `stream` take it."""
        if isinstance(backend, PassthroughBackend):
            return body
        return self.to_chat(body, refuser(route))

    async def complete(self, backend: Backend, body: dict[str, Any],
                       route: Route) -> dict[str, Any]:
        if isinstance(backend, PassthroughBackend):
            return await backend.forward(self.path, body, route)
        return self.from_chat(await backend.complete(body, route), body["model"])

    def stream(self, backend: Backend, body: dict[str, Any],
               route: Route) -> AsyncIterator[dict[str, Any]]:
        if isinstance(backend, PassthroughBackend):
            return backend.forward_stream(self.path, body, route)
        chat = {**body, "stream": True, "stream_options": {"include_usage": True}}
        return self.events_from_chat(backend.stream(chat, route), body["model"])


MESSAGES = ViaChat(MESSAGES_PATH, messages_to_chat.to_chat, messages_via_chat.from_chat,
                   messages_via_chat.events_from_chat)
RESPONSES = ViaChat("/responses", responses_to_chat.to_chat, responses_via_chat.from_chat,
                    responses_via_chat.events_from_chat)
