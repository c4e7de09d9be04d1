"""Server-sent events for MCP streams: an incremental parser that keeps each event's id.

MCP's streamable HTTP transport resumes a broken stream from the last event id the client
saw (`Last-Event-ID`), so ids, event names and `retry` must survive the relay; the
OpenAI-side reader in `sse.py` keeps only `data`. Fed raw chunks, not lines, so a large
tool result on one line is not limited by the HTTP client's line buffer.
"""

from __future__ import annotations

from dataclasses import dataclass


class MessageTooLarge(ValueError):
    """An event, or a whole answer, over the size lictor reads."""


@dataclass(slots=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def frame(self, data: str | None = None) -> bytes:
        """The event on the wire, with `data` (one JSON line) in place of its own."""
        lines = []
        if self.event != "message":
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        body = self.data if data is None else data
        lines.extend(f"data: {part}" for part in body.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()


KEEP_ALIVE = b": keep-alive\n\n"


class SseParser:
    """Feed bytes as they arrive; get back the events they complete."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_max_bytes", "_retry", "_size")

    def __init__(self, max_event_bytes: int) -> None:
        self._max_bytes = max_event_bytes
        self._buffer = b""
        self._size = 0
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = "message"
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        out: list[SseEvent] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            raw, self._buffer = self._buffer[:cut], self._buffer[cut + 1 :]
            event = self._line(raw.rstrip(b"\r").decode("utf-8"))
            if event is not None:
                out.append(event)
        if len(self._buffer) + self._size > self._max_bytes:
            raise MessageTooLarge(f"an event is larger than {self._max_bytes} bytes")
        return out

    def close(self) -> list[SseEvent]:
        """Whatever the stream left unterminated, dispatched as a last event."""
        events = self.feed(b"\n") if self._buffer else []
        if self._data or self._id is not None:
            events.append(self._dispatch())
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch() if self._data or self._id is not None else None
        if line.startswith(":"):
            return None  # a comment: keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
            self._size += len(value)
        elif field == "event":
            self._event = value or "message"
        elif field == "id" and "\0" not in value:
            self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent:
        event = SseEvent("\n".join(self._data), self._event, self._id, self._retry)
        self._reset()
        return event
