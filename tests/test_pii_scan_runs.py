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
    return [(recs[0].entity, finder) for finder, recs in scanner._groups]


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
