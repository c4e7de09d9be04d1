"""What a Chat Completions answer holds besides `content` and `tool_calls`, read so that
nothing reaches the agent unjudged: the model's other texts (a refusal, the reasoning some
providers add, an audio answer's transcript), judged with the answer rules like `content`,
and everything else (a search model's url citations, fields newer than lictor), judged as
third-party text. The same reading serves a whole message and a stream delta.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lictor.adapters.content_walk import Path, restore_strings, string_segments
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Segment, Trust

# The model's own texts, by their place in a message or delta (streamed piecemeal, so a
# stream checks each on a sliding window); reasoning as DeepSeek and vLLM (`reasoning_content`)
# or OpenRouter (`reasoning`) send it.
MODEL_TEXTS: tuple[tuple[str, ...], ...] = (
    ("content",), ("refusal",), ("reasoning_content",), ("reasoning",),
    ("audio", "transcript"))
# Read by the adapter itself (tool calls), or refused there (a legacy function call).
_READ_ELSEWHERE = frozenset({"role", "tool_calls", "function_call"})
# An audio answer's fields that carry no text: the sound itself, its id and expiry.
_AUDIO_OPAQUE = frozenset({"id", "data", "expires_at"})


def model_texts(message: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(place, text) of each of the model's texts the message (or delta) holds."""
    for place in MODEL_TEXTS:
        value: Any = message
        for key in place:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            yield place, value


def with_text(message: dict[str, Any], place: tuple[str, ...], text: str) -> dict[str, Any]:
    """A copy of `message` with the text at `place` replaced."""
    if len(place) == 1:
        return {**message, place[0]: text}
    return {**message, place[0]: with_text(message[place[0]], place[1:], text)}


def _unread(message: dict[str, Any]) -> dict[str, Any]:
    """The fields no other reading covers: everything but the adapter's own and the model
    texts (which must then be strings: anything else is read here, whole)."""
    out: dict[str, Any] = {}
    for key, value in message.items():
        if key in _READ_ELSEWHERE or (key != "audio" and isinstance(value, str | None)
                                      and (key,) in MODEL_TEXTS):
            continue
        if key == "audio" and isinstance(value, dict):
            rest = {k: v for k, v in value.items() if k not in _AUDIO_OPAQUE
                    and not (k == "transcript" and isinstance(v, str))}
            if rest:
                out[key] = rest
            continue
        out[key] = value
    return out


def segments(message: dict[str, Any], path: Path, out: list[Segment]) -> None:
    """Every text of a message or delta but its tool calls: the model's texts as the
    model's, anything else as third-party text (`Trust.TOOL`)."""
    for place, text in model_texts(message):
        out.append(Segment(text, Trust.ASSISTANT, (*path, *place)))
    other_segments(message, path, out)


def other_segments(message: dict[str, Any], path: Path, out: list[Segment]) -> None:
    """The strings of the fields that are not the model's texts (citations, newer fields)."""
    for key, value in _unread(message).items():  # `content` here: an array of parts
        trust = Trust.ASSISTANT if key == "content" else Trust.TOOL
        string_segments(value, trust, (*path, key), out)


def restored(message: dict[str, Any], vault: PlaceholderVault) -> dict[str, Any]:
    """The message (or delta) with placeholders put back in every field but its tool calls."""
    out = dict(message)
    for key, value in message.items():
        if key not in _READ_ELSEWHERE:
            out[key] = restore_strings(value, vault)
    return out


def restored_others(message: dict[str, Any], vault: PlaceholderVault) -> dict[str, Any]:
    """The message (or delta) with placeholders put back in the fields `other_segments`
    reads, and only there (a stream restores the model's texts as they flow)."""
    out = dict(message)
    for key, value in _unread(message).items():
        back = restore_strings(value, vault)
        out[key] = {**message[key], **back} if isinstance(back, dict) else back
    return out


def audit_kind(segment: Segment) -> str | None:
    """The audited item a segment of `segments` belongs to: its field (`audio.transcript`
    for the transcript), or None for `content` as text, which the audit keeps already."""
    place = [str(p) for p in segment.path[2:]]  # after ("choices", index)
    if place == ["content"]:
        return None
    return ".".join(place[:2]) if place[:1] == ["audio"] else place[0]
