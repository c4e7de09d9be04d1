"""Each wire protocol the gateway serves, as one table of its adapter's functions, so the
gateway runs one pipeline for all of them (parse, apply, upstream, stream, errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lictor.adapters import (
    anthropic_messages,
    anthropic_stream,
    openai_chat,
    openai_embeddings,
    openai_responses,
    responses_stream,
)
from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.backends.dispatch import MESSAGES, RESPONSES
from lictor.adapters.errors import ProtocolError, openai_error_body
from lictor.adapters.openai_stream import ChatStream
from lictor.adapters.sse import DONE, frame
from lictor.adapters.stream_text import AuthorizeCalls, CheckText, HeldCalls
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Action, Decision, Finding, ToolCall


class GovernedStream(Protocol):
    """What the gateway drives: ChatStream, MessagesStream, ResponsesStream."""

    findings: list[Finding]
    blocked: Finding | None
    removed_tool_calls: list[str]
    held: list[HeldCalls]
    usage: Any

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...

    def release(self, index: int, calls: list[ToolCall], decision: Decision,
                finish: str | None) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]: ...

    def audit_content(self) -> list[dict[str, Any]]: ...


OpenStream = Callable[[PlaceholderVault, CheckText, AuthorizeCalls], GovernedStream]


class Adapter(Protocol):
    """What each protocol's adapter module offers (openai_chat, openai_responses, ...)."""

    PROTOCOL: str

    def parse_request(self, body: Any) -> Action: ...

    def apply_request(self, body: dict[str, Any], action: Action, masked_texts: list[str],
                      decision: Decision) -> dict[str, Any]: ...

    def parse_response(self, resp: Any) -> Action: ...

    def produced(self, resp: dict[str, Any]) -> list[dict[str, Any]]: ...

    def apply_response(self, resp: dict[str, Any], decision: Decision,
                       vault: PlaceholderVault) -> dict[str, Any]: ...


def _as_is(backend: Backend, body: dict[str, Any], route: Route) -> dict[str, Any]:
    return body


def _total_tokens(usage: Any) -> int:
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0


@dataclass(frozen=True, slots=True)
class Wire:
    """One protocol: its adapter (looked up at call time), how it is served and framed."""

    adapter: Adapter
    complete: Callable[[Backend, dict[str, Any], Route], Any]  # awaitable answer
    error_body: Callable[[ProtocolError], dict[str, Any]]
    # the checked body as the route's backend takes it, before anything is sent (a
    # ProtocolError refuses the request); `complete` and `stream` take what it returns
    prepare: Callable[[Backend, dict[str, Any], Route], dict[str, Any]] = _as_is
    usage_tokens: Callable[[Any], int] = _total_tokens
    open_stream: OpenStream | None = None  # None: the protocol does not stream
    stream: Callable[[Backend, dict[str, Any], Route], AsyncIterator[dict[str, Any]]] | None = None
    frame: Callable[[dict[str, Any]], bytes] = frame
    error_frame: Callable[[ProtocolError], bytes] = lambda err: frame(openai_error_body(err))
    stream_end: bytes = b""

    @property
    def protocol(self) -> str:
        return self.adapter.PROTOCOL


CHAT = Wire(
    openai_chat,
    complete=lambda backend, body, route: backend.complete(body, route),
    error_body=openai_error_body, open_stream=ChatStream,
    stream=lambda backend, body, route: backend.stream(body, route), stream_end=DONE,
)
RESPONSES_WIRE = Wire(
    openai_responses,
    complete=RESPONSES.complete, prepare=RESPONSES.prepare, error_body=openai_error_body,
    open_stream=responses_stream.ResponsesStream,
    stream=RESPONSES.stream, frame=responses_stream.frame,
    error_frame=responses_stream.error_frame,
)
MESSAGES_WIRE = Wire(
    anthropic_messages,
    complete=MESSAGES.complete, prepare=MESSAGES.prepare,
    error_body=anthropic_messages.error_body,
    usage_tokens=anthropic_messages.usage_tokens, open_stream=anthropic_stream.MessagesStream,
    stream=MESSAGES.stream, frame=anthropic_stream.frame,
    error_frame=anthropic_stream.error_frame,
)
EMBEDDINGS = Wire(
    openai_embeddings,
    complete=lambda backend, body, route: backend.embed(body, route),
    error_body=openai_error_body,
)
