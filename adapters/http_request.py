"""Plain HTTP (the egress data plane's non-model traffic): request and response bodies as
`Action`s, so the engine scans them like any other content.

A body the engine can read (text, JSON, form, XML) is one segment; anything else (images,
archives, compressed bodies) carries no text and is recorded as not scanned.
"""

from __future__ import annotations

from lictor.enforcement.types import Action, ActionKind, Direction, Segment, Trust

PROTOCOL = "http"
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded",
               "application/xml", "application/graphql", "application/x-ndjson")


def is_text(content_type: str) -> bool:
    """Whether a body of this Content-Type is text the engine can scan."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith(_TEXT_TYPES) or kind.endswith(("+json", "+xml"))


def body_text(content_type: str, body: bytes) -> str | None:
    """The body as text, or None when it is not text (or not UTF-8)."""
    if not body:
        return ""
    if content_type and not is_text(content_type):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_request(text: str) -> Action:
    """What the agent sends out: its own content, judged as a user's (PII, secrets)."""
    segments = [Segment(text, Trust.USER, ("body",))] if text else []
    return Action(ActionKind.HTTP_REQUEST, Direction.REQUEST, PROTOCOL, segments=segments)


def parse_response(text: str) -> Action:
    """What comes back: untrusted content headed for the agent's context, judged like a
    tool result (injection, smuggling)."""
    segments = [Segment(text, Trust.TOOL, ("body",))] if text else []
    return Action(ActionKind.TOOL_RESULT, Direction.REQUEST, PROTOCOL, segments=segments)
