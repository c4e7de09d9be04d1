"""Presidio pattern recognizers for the PII entities lictor can mask, all strictly offline.

Presidio owns the patterns and the validation logic (Luhn, IBAN checksum, SSN pruning); we add
the entities it lacks (phone by pattern, Chinese IDs) and scan hints so the scanner can skip
text that cannot contain a match.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import phonenumbers
import regex
import tldextract
from tldextract.remote import lenient_netloc

from lictor.enforcement.pii.digest_cache import DigestCache
from lictor.enforcement.pii.phone_validity import PhoneValidity
from lictor.enforcement.pii.presidio_import import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    Pattern,
    PatternRecognizer,
    UsSsnRecognizer,
)

ENTITY_LABELS: Mapping[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
    "US_SSN": "SSN",
    "CN_RESIDENT_ID": "CN_ID",
    "CN_MOBILE": "CN_MOBILE",
    "CN_BANK_CARD": "CN_BANK_CARD",
}
SUPPORTED_ENTITIES: tuple[str, ...] = tuple(ENTITY_LABELS)

# Our own recognizers are case-sensitive: their classes are explicit about case.
_FLAGS = regex.DOTALL | regex.MULTILINE

_PHONE_VALIDITY = PhoneValidity()  # phonenumbers' is_valid_number, compiled per region
# Offline public-suffix extractor: no URL to fetch, no disk cache, the bundled snapshot only.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def luhn_valid(digits: str) -> bool:
    """Return whether a string of decimal digits passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return bool(digits) and total % 10 == 0


def _digits(text: str) -> str:
    return "".join(filter(str.isdigit, text))


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, validating the domain against the bundled suffix list.

    tldextract's verdict depends only on the host it parses out of the match, and addresses
    share a few hosts, so verdicts are remembered per host (under a keyed digest, bounded).
    """

    HOST_CACHE_SIZE = 4096

    def __init__(self) -> None:
        super().__init__()
        _OFFLINE_TLD("example.com")  # load the bundled snapshot now, not on the first request
        self._hosts: DigestCache[bool] = DigestCache(self.HOST_CACHE_SIZE)

    def validate_result(self, pattern_text: str) -> bool:
        host = lenient_netloc(pattern_text)  # what tldextract itself looks at
        digest = self._hosts.digest(host)
        valid = self._hosts.get(digest)
        if valid is None:
            valid = _OFFLINE_TLD(host).fqdn != ""
            self._hosts.put(digest, valid)
        return valid


class VersionSafeIpRecognizer(IpRecognizer):
    """Presidio's IP recognizer, minus dotted runs longer than an address (version strings)."""

    def __init__(self) -> None:
        super().__init__(
            patterns=[
                Pattern(p.name, r"(?<![0-9]\.)" + p.regex + r"(?!\.[0-9])", p.score)
                for p in IpRecognizer.PATTERNS
            ]
        )


class PhoneNumberRecognizer(PatternRecognizer):
    """Phone numbers by candidate pattern, validated with `phonenumbers` (much faster than
    presidio's matcher-based PhoneRecognizer); numbers without a country code default to US."""

    DEFAULT_REGION: ClassVar[str] = "US"
    # the shortest valid number in phonenumbers' metadata (+43 and 4 digits)
    MIN_DIGITS: ClassVar[int] = 6
    MAX_DIGITS: ClassVar[int] = 15  # E.164
    # ASCII boundaries, so a number glued to CJK text is still found; the leading lookahead
    # gives the regex engine a first-character set to search for.
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "phone (international)",
            r"(?<![0-9A-Za-z_+])\+[1-9][0-9]{0,2}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}"
            r"(?![0-9A-Za-z_]|[.\-][0-9])",
            0.5,
        ),
        Pattern(
            "phone (national)",
            r"(?<![0-9A-Za-z_+.\-])(?=[(0-9])(?:1[ .\-]?)?(?:\([0-9]{3}\)[ .\-]?|[0-9]{3}[ .\-]?)"
            r"[0-9]{3}[ .\-]?[0-9]{4}(?![0-9A-Za-z_]|[.\-][0-9])",
            0.4,
        ),
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER", patterns=list(self.PATTERNS), global_regex_flags=_FLAGS
        )

    def validate_result(self, pattern_text: str) -> bool:
        if not self.MIN_DIGITS <= len(_digits(pattern_text)) <= self.MAX_DIGITS:
            return False
        try:
            number = phonenumbers.parse(pattern_text, self.DEFAULT_REGION)
        except phonenumbers.NumberParseException:
            return False
        return _PHONE_VALIDITY.is_valid(number)


class CnResidentIdRecognizer(PatternRecognizer):
    """18-character PRC resident identity number (GB 11643): area, birth date, sequence and an
    ISO 7064 MOD 11-2 check character; the checksum and the date are both verified."""

    WEIGHTS: ClassVar[tuple[int, ...]] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    CHECK_CHARS: ClassVar[str] = "10X98765432"
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "CN resident id",
            r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
            r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])",
            0.5,
        )
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="CN_RESIDENT_ID",
            patterns=list(self.PATTERNS),
            global_regex_flags=_FLAGS,
        )

    @classmethod
    def check_char(cls, first17: str) -> str:
        """The check character for the first 17 digits of an identity number."""
        total = sum(int(d) * w for d, w in zip(first17, cls.WEIGHTS, strict=True))
        return cls.CHECK_CHARS[total % 11]

    def validate_result(self, pattern_text: str) -> bool:
        value = pattern_text.upper()
        try:
            born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        except ValueError:
            return False
        if born > datetime.date.today():
            return False
        return self.check_char(value[:17]) == value[17]


class CnMobileRecognizer(PatternRecognizer):
    """Mainland China mobile numbers (1[3-9] and 9 digits, optional +86/0086/86 prefix); a
    number in a range phonenumbers knows as mobile scores 1.0, other ones keep 0.5."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "CN mobile",
            r"(?<![0-9+])(?:\+86[ \-]?|0086[ \-]?|86[ \-]?|)1[3-9][0-9](?:[ \-]?[0-9]{4}){2}"
            r"(?![0-9])",
            0.5,
        )
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="CN_MOBILE", patterns=list(self.PATTERNS), global_regex_flags=_FLAGS
        )
        metadata: Any = phonenumbers.PhoneMetadata.metadata_for_region("CN")
        self._mobile = regex.compile(metadata.mobile.national_number_pattern)

    def validate_result(self, pattern_text: str) -> bool | None:
        return True if self._mobile.fullmatch(_digits(pattern_text)[-11:]) else None


class CnBankCardRecognizer(PatternRecognizer):
    """UnionPay-style bank card numbers: 16-19 digits starting with 62, optionally grouped by
    4 with spaces or dashes, Luhn-validated."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "CN bank card",
            r"(?<![0-9])62[0-9]{2}(?:[ \-]?[0-9]{4}){3}(?:[ \-]?[0-9]{1,3})?(?![0-9])",
            0.3,
        )
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="CN_BANK_CARD", patterns=list(self.PATTERNS), global_regex_flags=_FLAGS
        )

    def validate_result(self, pattern_text: str) -> bool:
        return luhn_valid(_digits(pattern_text))


@dataclass(frozen=True, slots=True)
class ScanHint:
    """What any match of an entity's patterns is made of, so the scanner only looks at the
    maximal runs of `allowed` characters that contain a match of one of the `anchors`.

    `allowed` is a character-class body, in which `\\d` may appear (ASCII text then uses the
    faster `0-9`); anchors are made of allowed characters. Every match holds at least
    `min_digits` digits; per pattern name, at least `pattern_digits[name]` digits, each
    substring of `needs[name]`, and a match of `cores[name]`: the pattern without its
    lookarounds and optional parts, far cheaper to search for than the pattern itself.
    `reach` = (before, after), with a literal anchor each match holds exactly once: a match
    is looked for only between the anchors around it, and within that many characters of
    its own. It bounds a backtracking pattern's
    work on hostile runs (presidio's email pattern is quadratic in a long local part: 4 KB
    of "a-a." before an "@" took 1.7 s) at a limit real values keep (RFC 5321: a local part
    of 64 octets, a domain of 255).
    Tests check the scanner against presidio's own `analyze`, and each core against its
    pattern's matches.
    """

    allowed: str
    anchors: tuple[str, ...]
    min_digits: int = 0
    pattern_digits: Mapping[str, int] = field(default_factory=dict)
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cores: Mapping[str, str] = field(default_factory=dict)
    reach: tuple[int, int] | None = None


_NUMERIC = r"\d \-.+()Xx"
# Every numeric entity has at least 6 digits (phone numbers, the shortest: see MIN_DIGITS),
# so its first digit is followed by at least 5 more allowed characters.
_NUMERIC_ANCHORS = (rf"[\d][{_NUMERIC}]{{{PhoneNumberRecognizer.MIN_DIGITS - 1},}}",)
# Characters that IGNORECASE folds onto ASCII letters (Kelvin sign, long s, dotted/dotless i).
_FOLDS = "\u212a\u017f\u0130\u0131"

SCAN_HINTS: Mapping[str, ScanHint] = {
    "EMAIL_ADDRESS": ScanHint(r"!#$%&'*+\-/=?^_`{|}~\w.@", ("@",), reach=(64, 255)),
    "CREDIT_CARD": ScanHint(_NUMERIC, _NUMERIC_ANCHORS, 13, cores={
        "All Credit Cards (weak)":
            r"(?:4\d{3}|5[0-5]\d{2}|6\d{3}|1\d{3}|3\d{3})[- ]?\d{3,4}[- ]?\d{3,4}[- ]?\d{3,5}"}),
    "IBAN_CODE": ScanHint(r"A-Z0-9 \-", ("[A-Z]{2}[0-9]{2}",)),
    "IP_ADDRESS": ScanHint(
        r"0-9A-Za-z\d:.%/" + _FOLDS,
        # The middle octets of IPv4, or two colons at most one hex group apart (IPv6).
        (r"\.[0-9]{1,3}\.[0-9]{1,3}\.", r":[0-9A-Fa-f]{0,4}:"),
        needs={
            "IPv4": (".",),
            "IPv4_mapped": (".", ":"),
            "IPv4_embedded": (".", ":"),
            "IPv6": (":",),
        },
    ),
    "US_SSN": ScanHint(_NUMERIC, _NUMERIC_ANCHORS, 9,
                       cores={"SSN5 (medium)": r"[0-9]{3}[- .][0-9]{2}[- .][0-9]{4}"}),
    "CN_RESIDENT_ID": ScanHint(_NUMERIC, _NUMERIC_ANCHORS, 17),
    "CN_MOBILE": ScanHint(_NUMERIC, _NUMERIC_ANCHORS, 11),
    "CN_BANK_CARD": ScanHint(_NUMERIC, _NUMERIC_ANCHORS, 16, needs={"CN bank card": ("62",)}),
    "PHONE_NUMBER": ScanHint(
        _NUMERIC,
        _NUMERIC_ANCHORS,
        PhoneNumberRecognizer.MIN_DIGITS,
        pattern_digits={"phone (national)": 10},
        needs={"phone (international)": ("+",)},
        cores={"phone (national)":
               r"(?:\([0-9]{3}\)[ .\-]?|[0-9]{3}[ .\-]?)[0-9]{3}[ .\-]?[0-9]{4}"},
    ),
}

# An ASCII-only word boundary. Presidio's `\b` is Unicode-aware, so a card number written
# straight after Chinese text ("卡号4111111111111111") has no boundary before it and was
# missed; numbers are delimited by ASCII letters and digits only.
_ASCII_WORD = "0-9A-Za-z_"
_ASCII_BOUNDARY = (
    rf"(?:(?<![{_ASCII_WORD}])(?=[{_ASCII_WORD}])|(?<=[{_ASCII_WORD}])(?![{_ASCII_WORD}]))"
)


def ascii_boundaries(factory: Callable[[], PatternRecognizer]) -> Callable[[], PatternRecognizer]:
    """Wrap a recognizer factory so its patterns use ASCII word boundaries."""

    def build() -> PatternRecognizer:
        recognizer = factory()
        patterns: list[Pattern] = recognizer.patterns  # type: ignore[has-type]  # presidio
        for pattern in patterns:
            pattern.regex = pattern.regex.replace("\\b", _ASCII_BOUNDARY)
        return recognizer

    return build


_FACTORIES: Mapping[str, Callable[[], PatternRecognizer]] = {
    "EMAIL_ADDRESS": OfflineEmailRecognizer,
    "PHONE_NUMBER": PhoneNumberRecognizer,
    "CREDIT_CARD": ascii_boundaries(CreditCardRecognizer),
    "IBAN_CODE": IbanRecognizer,
    "IP_ADDRESS": ascii_boundaries(VersionSafeIpRecognizer),
    "US_SSN": ascii_boundaries(UsSsnRecognizer),
    "CN_RESIDENT_ID": CnResidentIdRecognizer,
    "CN_MOBILE": CnMobileRecognizer,
    "CN_BANK_CARD": CnBankCardRecognizer,
}


def build_recognizers(entities: Iterable[str]) -> list[PatternRecognizer]:
    """One recognizer per requested entity (duplicates collapsed, order kept)."""
    wanted = list(dict.fromkeys(entities))
    unknown = [name for name in wanted if name not in _FACTORIES]
    if unknown:
        raise ValueError(
            f"unknown PII entity {', '.join(unknown)}; supported: {', '.join(SUPPORTED_ENTITIES)}"
        )
    return [_FACTORIES[name]() for name in wanted]
