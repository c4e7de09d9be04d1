"""ByteRegex: RE2 over bytes encoded once gives what google-re2's str API gives."""

from __future__ import annotations

import pytest

from lictor.enforcement.byte_regex import ByteRegex, ByteRegexSet, char_offset
from lictor.rules.regex_syntax import compile_re2

TEXTS = [
    "",
    "plain ascii text with abc and abcabc",
    "ünïcödé abc 中文 abc🙂abc",
    "abc",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("pattern", ["abc", "(?P<word>[a-z]+)", "b*", "(?P<x>a)|(?P<y>c)"])
def test_spans_and_search_agree_with_re2(pattern: str, text: str) -> None:
    fast, reference = ByteRegex(pattern), compile_re2(pattern)
    data = text.encode()
    spans = [(char_offset(data, s), char_offset(data, e)) for s, e in fast.spans(data)]
    assert spans == [m.span() for m in reference.finditer(text)]
    found, expected = fast.search(data), reference.search(text)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert (char_offset(data, found[0][0]), char_offset(data, found[0][1])) == expected.span()
    assert expected.lastgroup is None or fast.group_names[
        next(i for i in range(len(found) - 1, 0, -1) if found[i][0] >= 0)
    ] == expected.lastgroup


def test_group_names_by_index() -> None:
    assert ByteRegex("(?P<a>x)(y)(?P<b>z)").group_names == {1: "a", 3: "b"}


def test_no_match_past_the_end() -> None:
    fast = ByteRegex("abc")
    assert fast.search(b"xxabc", 3) is None
    assert list(fast.search(b"xxabc", 2) or ()) == [(2, 5)]


def test_set_names_every_pattern_present_and_only_those() -> None:
    found = ByteRegexSet(["abc", "[0-9]{3}", "%", "zzz"])
    assert found.present(b"xx abc 1234 %41") == {0, 1, 2}
    assert found.present("ünï 123".encode()) == {1}
    assert found.present(b"") == frozenset()
