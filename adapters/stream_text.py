"""One streamed text (a content block, an output part): checked on a sliding window and
restored as it flows, for the Messages and Responses stream governors."""

from __future__ import annotations

from dataclasses import dataclass, field

from lictor.adapters.openai_stream import WINDOW, CheckText
from lictor.enforcement.pii import PlaceholderVault, StreamRestorer
from lictor.enforcement.types import STOPS, Finding


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
