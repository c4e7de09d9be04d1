"""What every stream governor shares: one streamed text (a chat field, a content block, an
output part) checked on a sliding window and restored as it flows, the stream's findings,
and the tool calls it holds back until they are authorized."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lictor.adapters.errors import ProtocolError
from lictor.enforcement.pii import PlaceholderVault, StreamRestorer
from lictor.enforcement.types import STOPS, Decision, Finding, Segment, ToolCall

CheckText = Callable[[str], list[Finding]]


class AuthorizeCalls(Protocol):
    """Judges what a streamed answer holds back: the tool calls the model proposes and the
    texts of items judged whole (a provider-run tool's call and result)."""

    def __call__(self, calls: list[ToolCall], segments: Sequence[Segment] = ()) -> Decision: ...


WINDOW = 512  # chars of earlier output re-scanned with each chunk, so a phrase split
# across chunks is still seen whole
MAX_INDEX = 1024  # choices, items, blocks and calls: far above what any provider sends


def malformed(why: str) -> ProtocolError:
    """A stream event lictor cannot read: the stream ends with an upstream error."""
    return ProtocolError(502, f"the upstream sent a malformed stream event: {why}",
                         error_type="upstream_error", code="bad_upstream_stream")


def check_index(value: Any, what: str) -> None:
    if type(value) is not int or not 0 <= value < MAX_INDEX:
        raise malformed(f"{what} must be a small non-negative integer")


def checked_event(event: Any, indexes: tuple[str, ...],
                  objects: tuple[str, ...]) -> dict[str, Any]:
    """A Responses or Messages event, checked where the governor reads it: an object whose
    `indexes` fields, when present, are small integers and `objects` fields are objects."""
    if not isinstance(event, dict):
        raise malformed("it is not a JSON object")
    if not isinstance(event.get("type", ""), str):
        raise malformed("`type` must be a string")
    for key in indexes:
        if key in event:
            check_index(event[key], f"`{key}`")
    for key in objects:
        if event.get(key) is not None and not isinstance(event[key], dict):
            raise malformed(f"`{key}` must be an object")
    return event


@dataclass(slots=True)
class HeldCalls:
    """A choice's tool calls that need people's approval before the stream's `release`."""

    index: int
    calls: list[ToolCall]
    decision: Decision
    finish: str | None


@dataclass(slots=True)
class TextGate:
    """Feed the model's (masked) text in; get the restored text to release out."""

    restorer: StreamRestorer
    upstream: list[str] = field(default_factory=list)  # masked, as the model wrote it
    tail: str = ""

    @classmethod
    def of(cls, vault: PlaceholderVault) -> TextGate:
        return cls(StreamRestorer(vault))

    def feed(self, text: str, check: CheckText) -> tuple[list[Finding], str]:
        self.upstream.append(text)
        findings = check(self.tail + text)
        self.tail = (self.tail + text)[-WINDOW:]
        return findings, self.restorer.feed(text)

    def flush(self) -> str:
        return self.restorer.flush()


class Findings:
    """The findings of one stream, and the first one that stops it."""

    __slots__ = ("blocked", "findings")

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.blocked: Finding | None = None

    def note(self, findings: list[Finding]) -> None:
        for f in findings:
            if f not in self.findings:
                self.findings.append(f)
            if f.verdict in STOPS and not f.shadow and self.blocked is None:
                self.blocked = f


class HeldToolCalls(Findings):
    """A stream's findings, plus the tool calls it holds back until they are authorized:
    released at once, or held for the data plane to settle approvals, then `release`d."""

    def __init__(self, authorize: AuthorizeCalls) -> None:
        super().__init__()
        self._authorize = authorize
        self.held: list[HeldCalls] = []
        self.removed_tool_calls: list[str] = []

    def decide(self, calls: list[ToolCall], finish: str | None) -> list[dict[str, Any]]:
        """Authorize `calls`; the events to release now (none while people decide)."""
        decision = self._authorize(calls)
        if decision.approvals:  # the data plane asks people, maybe waits, then releases
            self.held.append(HeldCalls(0, calls, decision, finish))
            return []
        return self.release(0, calls, decision, finish)

    def settle(self, decision: Decision) -> set[str] | None:
        """Note the decision's findings; the ids of the calls it removes, or None when
        the stream is blocked and nothing more may be released."""
        self.note(decision.findings)
        return None if self.blocked is not None else set(decision.removed_tool_calls)

    def release(self, index: int, calls: list[ToolCall], decision: Decision,
                finish: str | None) -> list[dict[str, Any]]:
        raise NotImplementedError
