"""The PII scanner's fast run finders against the reference ones, on generated texts.

On ASCII text the email and numeric groups find their runs with `find`s on a byte mask
instead of one RE2 pass; both must give exactly the same runs as the
RE2 pattern and as the Unicode `regex` path, or the scan would miss or invent matches.
"""

from __future__ import annotations

import random

import pytest

from lictor.enforcement.pii.scanner import PiiScanner, _WindowFinder
from lictor.rules.vocabulary import PII_ENTITIES


def _finders() -> list[tuple[str, _WindowFinder]]:
    scanner = PiiScanner(PII_ENTITIES)
    return [(recs[0].entity, finder) for finder, recs, _ in scanner._groups]


def _reference(finder: _WindowFinder, text: str) -> list[tuple[int, int]]:
    """The runs as the single RE2 pattern finds them."""
    return list(finder._ascii_runs.spans(text.encode()))


def test_the_fast_paths_cover_the_email_and_numeric_groups() -> None:
    """What the speed-up relies on: '@' is a literal anchor, the numeric anchor a digit-lead."""
    finders = dict(_finders())
    assert finders["EMAIL_ADDRESS"]._literal == b"@"
    assert finders["PHONE_NUMBER"]._digit_lead is not None
    assert finders["PHONE_NUMBER"]._digit_lead.pattern == b"0[0a]{5}"
    assert finders["IBAN_CODE"]._literal is None and finders["IBAN_CODE"]._digit_lead is None


# ASCII characters that are allowed in some groups and not others, anchors, separators.
_ALPHABET = "0123456789" * 4 + "@@..--++()  Xx:%/_aZ!#$'*=?^`{|}~,;\"<>[]\\\t\nAB"
_PIECES = ("jane.doe@example.com", "+44 20 7946 0958", "(212) 555-0199", "a@b", "@", "@@",
           "4111 1111 1111 1111", "12345", "123456", "1 2 3 4 5 6", "x@y.z@w", "536-90-4399",
           "192.168.1.10", "GB82 WEST 1234", "2001:db8::1")


def _texts(seed: int, count: int) -> list[str]:
    rnd = random.Random(seed)
    texts = ["", "@", "1", "123456", "12345", "a@", "@a", " 123456", "123456 ", "1@2345678"]
    for _ in range(count):
        parts = []
        for _ in range(rnd.randint(1, 8)):
            if rnd.random() < 0.5:
                parts.append(rnd.choice(_PIECES))
            else:
                parts.append("".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 12))))
        texts.append(rnd.choice(("", " ", ",", "\n")).join(parts))
    return texts


@pytest.mark.parametrize("entity", ["EMAIL_ADDRESS", "PHONE_NUMBER"])
def test_fast_runs_equal_the_re2_runs_and_the_unicode_path(entity: str) -> None:
    """Runs at the text's start and end, adjacent and overlapping anchors, no anchor."""
    finder = dict(_finders())[entity]
    for text in _texts(20261122, 3000):
        runs = finder.windows(text, text.encode())
        assert runs == _reference(finder, text), text
        assert runs == finder.windows(text, None), text  # the non-ASCII path, same text


def test_texts_without_anchor_have_no_runs() -> None:
    finders = dict(_finders())
    for text in ("", "plain prose, no numbers", "1234,and 1-2,x9y", "a.b.c"):
        assert finders["EMAIL_ADDRESS"].windows(text, text.encode()) == []
        assert finders["PHONE_NUMBER"].windows(text, text.encode()) == []


def test_long_hostile_texts_agree() -> None:
    """One long run without a qualifying anchor, thousands of short runs, an anchor in every
    byte: the same runs as RE2 (the walk itself reads each byte a bounded number of times)."""
    finders = dict(_finders())
    for entity, unit in (("PHONE_NUMBER", "1 2 3 4 "), ("PHONE_NUMBER", "12345,"),
                         ("EMAIL_ADDRESS", "@"), ("EMAIL_ADDRESS", "a@,")):
        finder = finders[entity]
        text = unit * 20_000
        runs = finder.windows(text, text.encode())
        assert runs == _reference(finder, text)


def test_each_core_is_found_inside_every_match_of_its_pattern() -> None:
    """A pattern is skipped on a run where its core is absent: exact only if every match of
    the pattern contains a match of the core. Numbers in every grouping the patterns know,
    near misses, and digits of other scripts (`\\d` is Unicode there)."""
    scanner = PiiScanner(PII_ENTITIES)
    with_core = [(rec.entity, compiled, core) for _, recs, _ in scanner._groups for rec in recs
                 for compiled, _, _, _, core in rec.patterns if core is not None]
    assert {entity for entity, _, _ in with_core} == {"CREDIT_CARD", "US_SSN", "PHONE_NUMBER"}
    rnd = random.Random(7)
    digits = "0123456789" * 30 + "\u0661\u0662\u0663\u0664\u0665\u096a\uff15"
    seps = ["", "", "", " ", "-", ".", "(", ")", "+", "  ", "--"]
    seen = {entity: 0 for entity, _, _ in with_core}
    shapes = [(3, 2, 4), (3, 3, 4), (4, 4, 4, 4), (4, 6, 5), (1, 3, 3, 4), (4, 4, 4, 3), (3, 7)]
    for _ in range(12_000):
        if rnd.random() < 0.5:  # free-form
            sizes = tuple(rnd.randint(1, 5) for _ in range(rnd.randint(1, 7)))
        else:  # the groupings of SSNs, cards and phone numbers
            sizes = rnd.choice(shapes)
        gaps = seps if len(sizes) > 4 or rnd.random() < 0.3 else ["-", " ", ".", "", "--"]
        text = "".join(rnd.choice(gaps) + "".join(rnd.choice(digits) for _ in range(size))
                       for size in sizes)
        for entity, compiled, core in with_core:
            for match in compiled.finditer(text):
                seen[entity] += 1
                assert core.search(text, match.start(), match.end()) is not None, (entity, text)
    assert min(seen.values()) > 100, seen  # each pattern matched: the check was not vacuous
