"""Plain HTTP (the egress data plane's non-model traffic): request and response bodies as
`Action`s, so the engine scans them like any other content.

A body the engine can read (text, JSON, form, XML) is one segment; anything else (images,
archives, compressed bodies) carries no text and is recorded as not scanned.
"""

from __future__ import annotations

import zlib

from lictor.enforcement.types import Action, ActionKind, Direction, Segment, Trust

PROTOCOL = "http"
# what lictor lets agents ask hosts for, so every answer can be decoded with a size bound
ACCEPT_ENCODING = "gzip, deflate"
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
               "deflate": zlib.MAX_WBITS}


class BodyError(ValueError):
    """A body lictor will not judge: an encoding it does not decode, or too large decoded."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding, never more than `limit` bytes decoded (a
    small compressed body can expand enormously)."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    body = raw
    for coding in reversed(codings):  # the last applied is listed last
        if coding == "identity":
            continue
        wbits = _ZLIB_WBITS.get(coding)
        if wbits is None:
            raise BodyError(f"Content-Encoding {coding!r} is not decoded by lictor")
        try:
            inflate = zlib.decompressobj(wbits)
            out = inflate.decompress(body, limit + 1)
        except zlib.error:
            if coding != "deflate":
                raise BodyError(f"the body is not valid {coding}") from None
            try:  # some servers send raw deflate without the zlib header
                inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                out = inflate.decompress(body, limit + 1)
            except zlib.error:
                raise BodyError("the body is not valid deflate") from None
        if len(out) > limit or inflate.unconsumed_tail:
            raise BodyError(f"the body is larger than {limit} bytes once decoded", True)
        body = out
    if len(body) > limit:
        raise BodyError(f"the body is larger than {limit} bytes", True)
    return body
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
