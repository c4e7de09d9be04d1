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
    """A bounded map from keys holding a text to a result; oldest entries go first."""

    __slots__ = ("_chars", "_data", "max_chars", "max_entries")

    def __init__(self, max_entries: int = 20_000, max_chars: int = 64_000_000) -> None:
        self._data: dict[Hashable, tuple[V, int]] = {}  # key -> (value, chars it holds)
        self._chars = 0
        self.max_entries = max_entries
        self.max_chars = max_chars

    def entries(self) -> dict[Hashable, tuple[V, int]]:
        """The map itself, key -> (value, chars), for a hot loop's lookups; read only."""
        return self._data

    def get(self, key: Hashable) -> V | None:
        found = self._data.get(key)
        return None if found is None else found[0]

    def put(self, key: Hashable, value: V, chars: int) -> None:
        if key in self._data:
            return
        self._data[key] = (value, chars)
        self._chars += chars
        while len(self._data) > self.max_entries or self._chars > self.max_chars:
            oldest = next(iter(self._data))
            self._chars -= self._data.pop(oldest)[1]

    def get_or_compute(self, text: str, view: Hashable, compute: Callable[[str], V]) -> V:
        if len(text) < MIN_CHARS:
            return compute(text)
        key = (text, view)
        found = self.get(key)
        if found is not None:
            return found
        value = compute(text)
        self.put(key, value, len(text))
        return value

    def __len__(self) -> int:
        return len(self._data)
