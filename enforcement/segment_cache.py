"""Scan results cached by segment text, so a request costs its new content, not its history.

Agents resend the whole conversation on every call; the system prompt and earlier turns
were scanned before. Results are pure functions of the text and the compiled policy (one
cache per policy load), hold no agent data, and are bounded by entries and characters.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MIN_CHARS = 64  # shorter texts are cheaper to scan than to hash and store


class SegmentCache(Generic[V]):
    """A bounded map from (text, view) to a scan result; oldest entries go first."""

    __slots__ = ("_chars", "_data", "max_chars", "max_entries")

    def __init__(self, max_entries: int = 20_000, max_chars: int = 64_000_000) -> None:
        self._data: dict[tuple[str, Hashable], V] = {}
        self._chars = 0
        self.max_entries = max_entries
        self.max_chars = max_chars

    def get_or_compute(self, text: str, view: Hashable, compute: Callable[[str], V]) -> V:
        if len(text) < MIN_CHARS:
            return compute(text)
        key = (text, view)
        found = self._data.get(key)
        if found is not None:
            return found
        value = compute(text)
        self._data[key] = value
        self._chars += len(text)
        while len(self._data) > self.max_entries or self._chars > self.max_chars:
            oldest = next(iter(self._data))
            del self._data[oldest]
            self._chars -= len(oldest[0])
        return value

    def __len__(self) -> int:
        return len(self._data)
