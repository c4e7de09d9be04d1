"""The segment cache: computed once per (text, view), bounded, oldest evicted first."""

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
    cache: SegmentCache[int] = SegmentCache(max_entries=3, max_chars=10 * MIN_CHARS)
    texts = [str(i) * MIN_CHARS for i in range(5)]
    for t in texts:
        cache.get_or_compute(t, None, len)
    assert len(cache) == 3
    calls: list[str] = []
    cache.get_or_compute(texts[0], None, lambda t: calls.append(t) or 0)
    assert calls == [texts[0]]  # the oldest was evicted
    big: SegmentCache[int] = SegmentCache(max_entries=100, max_chars=3 * MIN_CHARS)
    for t in texts:
        big.get_or_compute(t, None, len)
    assert len(big) == 3
