"""The segment cache: computed once per (text, view), bounded, entries in use kept."""

from __future__ import annotations

from lictor.enforcement.segment_cache import MIN_CHARS, SegmentCache


def test_computes_once_per_text_and_view() -> None:
    calls: list[str] = []

    def compute(text: str) -> int:
        calls.append(text)
        return len(text)

    cache: SegmentCache[int] = SegmentCache()
    text = "x" * MIN_CHARS
    assert cache.get_or_compute(text, "a", compute) == MIN_CHARS
    assert cache.get_or_compute("".join(["x"] * MIN_CHARS), "a", compute) == MIN_CHARS
    assert cache.get_or_compute(text, "b", compute) == MIN_CHARS
    assert len(calls) == 2  # a new string with the same text hits; a new view does not


def test_short_texts_are_not_stored() -> None:
    cache: SegmentCache[str] = SegmentCache()
    cache.get_or_compute("short", None, str.upper)
    assert len(cache) == 0


def test_bounded_by_entries_and_chars() -> None:
    cache: SegmentCache[int] = SegmentCache(max_entries=10, max_chars=100 * MIN_CHARS)
    texts = [f"{i:03d}" * MIN_CHARS for i in range(50)]
    for t in texts:
        cache.get_or_compute(t, None, len)
        assert len(cache) <= 10
    calls: list[str] = []
    cache.get_or_compute(texts[0], None, lambda t: calls.append(t) or 0)
    assert calls == [texts[0]]  # long gone
    big: SegmentCache[int] = SegmentCache(max_entries=100, max_chars=4 * 3 * MIN_CHARS)
    for t in texts:
        big.get_or_compute(t, None, len)
        assert sum(len(key[0]) for key in big._data) <= 4 * 3 * MIN_CHARS


def test_entries_in_use_survive_traffic_that_passes_by() -> None:
    """A conversation touched on each of its turns keeps its entries while ten times the
    cache's size of other texts goes through (an entry outlives at least half the cache's
    worth of insertions after its last use); an untouched one is evicted."""
    cache: SegmentCache[int] = SegmentCache(max_entries=100)
    in_use = [f"turn {i} ".ljust(MIN_CHARS, "x") for i in range(20)]
    idle = "idle ".ljust(MIN_CHARS, "y")
    for text in [*in_use, idle]:
        cache.get_or_compute(text, None, len)
    computed: list[str] = []

    def compute(text: str) -> int:
        computed.append(text)
        return len(text)

    for burst in range(40):  # 25 passing texts between two turns of the conversation
        for i in range(25):
            cache.get_or_compute(f"other {burst} {i} ".ljust(MIN_CHARS, "z"), None, len)
        for text in in_use:
            cache.get_or_compute(text, None, compute)
    assert computed == []
    cache.get_or_compute(idle, None, compute)
    assert computed == [idle]


def test_table_lookups_with_refresh_below_behave_as_get() -> None:
    """The engine's inlined history walk (`table`, then `get` only below `refresh_below()`)
    keeps the same entries in the same order as calling `get` for every lookup."""
    by_get: SegmentCache[int] = SegmentCache(max_entries=50)
    by_table: SegmentCache[int] = SegmentCache(max_entries=50)
    texts = [f"text {i} ".ljust(MIN_CHARS, "x") for i in range(300)]
    for step in range(2_000):
        text = texts[(step * 7919) % len(texts) if step % 3 else step % 40]
        key = (text, None)
        by_get.get(key)
        entry = by_table.table.get(key)
        if entry is not None and entry[2] < by_table.refresh_below():
            by_table.get(key)
        for cache in (by_get, by_table):
            if key not in cache.table:
                cache.put(key, len(text), len(text))
    assert list(by_get.table.items()) == list(by_table.table.items())
