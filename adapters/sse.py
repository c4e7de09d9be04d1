"""Server-sent events: reading an upstream stream and framing events for the agent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any


class SseFormatError(ValueError):
    pass


async def read_events(lines: AsyncIterable[bytes], *, until_done: bool = False
                      ) -> AsyncIterator[str]:
    """Yield each event's `data` (multi-line data joined by newlines); stop at `[DONE]`.

    With `until_done`, a stream that ends without `[DONE]` was cut short (OpenAI always sends
    it): that is an `SseFormatError`, so a truncated answer is never passed off as whole."""
    data: list[str] = []
    async for raw in lines:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SseFormatError("upstream sent an event stream that is not UTF-8") from None
        if not line:
            if data:
                event = "\n".join(data)
                data = []
                if event == "[DONE]":
                    return
                yield event
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data and "\n".join(data) == "[DONE]":
        return
    if until_done:
        raise SseFormatError("the upstream stream ended before `data: [DONE]` (truncated)")
    if data:
        yield "\n".join(data)


async def read_json_events(lines: AsyncIterable[bytes], *, until_done: bool = False
                           ) -> AsyncIterator[dict[str, Any]]:
    async for event in read_events(lines, until_done=until_done):
        try:
            value = json.loads(event)
        except ValueError as exc:
            raise SseFormatError(f"upstream sent an event that is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise SseFormatError("upstream sent an event that is not a JSON object")
        yield value


def frame(value: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(value, separators=(",", ":")).encode() + b"\n\n"


def named_frame(value: dict[str, Any]) -> bytes:
    """An event framed as Anthropic and the Responses API do: `event: <type>`, then data."""
    kind = str(value.get("type", "message")).encode()
    return b"event: " + kind + b"\n" + frame(value)


DONE = b"data: [DONE]\n\n"
