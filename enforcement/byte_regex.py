"""RE2 searches over UTF-8 bytes encoded once per text, for the hot path.

google-re2's `str` API encodes the whole text again and recounts character offsets on every
`search` and every step of `finditer`, which costs more than the search itself on short texts
and grows with the number of matches on long ones. Here a caller encodes once and gets byte
spans; for ASCII text (the common case) byte and character offsets are the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import re2

from lictor.rules.regex_syntax import compile_options, compile_re2

Spans = Sequence[tuple[int, int]]  # the whole match, then each group; (-1, -1) if unset

# google-re2's compiled program and anchor are not public API; the version is pinned in the
# lock files and tests/test_byte_regex.py fails if they change.
_UNANCHORED = re2._Anchor.UNANCHORED


class ByteRegex:
    """One compiled RE2 pattern searched over bytes; group names by group index."""

    __slots__ = ("_match", "group_names", "pattern")

    def __init__(self, pattern: str) -> None:
        compiled = compile_re2(pattern)
        self.pattern = pattern
        self._match = compiled._regexp.Match
        self.group_names: dict[int, str] = {
            index: name.decode() for name, index in compiled._regexp.NamedCapturingGroups()
        }

    def search(self, data: bytes, pos: int = 0) -> Spans | None:
        """The leftmost match at or after byte `pos`, or None."""
        spans: Spans = self._match(_UNANCHORED, data, pos, len(data))
        return None if spans[0][0] < 0 else spans

    def spans(self, data: bytes) -> Iterator[tuple[int, int]]:
        """Byte spans of the successive non-overlapping matches, like `finditer`."""
        pos, size = 0, len(data)
        while pos <= size:
            start, end = self._match(_UNANCHORED, data, pos, size)[0]
            if start < 0:
                return
            yield start, end
            if end > start:
                pos = end
                continue
            pos = next_char(data, end)  # past an empty match


    def spans_in(self, data: bytes, pos: int, endpos: int) -> Iterator[tuple[int, int]]:
        """`spans` from byte `pos`, of matches ending by `endpos` (as `finditer(text, pos,
        endpos)`: for ASCII data, whose word boundaries at `endpos` a match never needs)."""
        while pos <= endpos:
            start, end = self._match(_UNANCHORED, data, pos, endpos)[0]
            if start < 0:
                return
            yield start, end
            pos = end if end > start else next_char(data, end)


def next_char(data: bytes, pos: int) -> int:
    """The byte offset of the character after the one starting at `pos` in UTF-8 `data`."""
    pos += 1
    while pos < len(data) and 0x80 <= data[pos] < 0xC0:  # continuation bytes
        pos += 1
    return pos


def char_offset(data: bytes, offset: int) -> int:
    """The character offset of byte `offset` (a match boundary) in UTF-8 `data`."""
    return len(data[:offset].decode("utf-8", "replace"))


class ByteRegexSet:
    """Which of several RE2 patterns occur anywhere in bytes, in one pass (RE2::Set): cheaper
    than one search per pattern when most are usually absent."""

    __slots__ = ("_match",)

    def __init__(self, patterns: Sequence[str]) -> None:
        found = re2.Set.SearchSet(compile_options())
        for index, pattern in enumerate(patterns):
            if found.Add(pattern) != index:
                raise ValueError(f"RE2 set refused pattern {index}: {pattern!r}")
        found.Compile()
        self._match = found._set.Match

    def present(self, data: bytes) -> frozenset[int]:
        """The indexes of the patterns that match somewhere in `data`."""
        return frozenset(self._match(data) or ())
