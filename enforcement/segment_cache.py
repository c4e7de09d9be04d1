"""Scan results cached by segment text, so a request costs its new content, not its history.

Agents resend the whole conversation on every call; the system prompt and earlier turns
were scanned before. Results are pure functions of the text and the compiled policy (one
cache per policy load), hold no agent data, and are bounded by entries and characters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

from lictor.enforcement import young_objects

V = TypeVar("V")

MIN_CHARS = 64  # shorter texts are cheaper to scan than to hash and store


class SegmentCache(Generic[V]):
    """A bounded map from keys holding a text to a result; the least recently put or
    refreshed entries go first, one at a time.

    A hit on an entry older than half the cache moves it to the back, so a conversation in
    use keeps its entries however much other traffic passes: an entry outlives at least half
    the cache's worth of insertions after its last use (close to LRU, for one dict move per
    entry per half cache rather than one per hit).
    """

    __slots__ = ("_chars", "_data", "_seq", "max_chars", "max_entries")

    def __init__(self, max_entries: int = 20_000, max_chars: int = 64_000_000) -> None:
        # key -> (value, chars it holds, insertion number), oldest first; an OrderedDict, as
        # a dict's first entry is found by skipping the slots of every entry popped before
        self._data: OrderedDict[Hashable, tuple[V, int, int]] = OrderedDict()
        self._chars = 0
        self._seq = 0
        self.max_entries = max_entries
        self.max_chars = max_chars

    def get(self, key: Hashable) -> V | None:
        found = self._data.get(key)
        if found is None:
            return None
        if self._seq - found[2] > self.max_entries // 2:  # getting old while in use
            self._seq += 1
            self._data[key] = (found[0], found[1], self._seq)
            self._data.move_to_end(key)
        return found[0]

    @property
    def table(self) -> Mapping[Hashable, tuple[V, int, int]]:
        """key -> (value, chars, insertion number), for a hot loop of lookups that calls `get`
        only on an entry older than `refresh_below()` (what `get` itself would move)."""
        return self._data

    def refresh_below(self) -> int:
        """Entries with an insertion number below this are moved to the back by `get`."""
        return self._seq - self.max_entries // 2

    def put(self, key: Hashable, value: V, chars: int) -> None:
        if key in self._data:
            return
        self._seq += 1
        self._data[key] = (value, chars, self._seq)
        self._chars += chars
        young_objects.kept()
        while len(self._data) > self.max_entries or self._chars > self.max_chars:
            self._chars -= self._data.popitem(last=False)[1][1]

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
