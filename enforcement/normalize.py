"""Text normalization before pattern scanning: the views of a segment that rules see.

An attacker hides a phrase from a rule by changing its bytes, not its meaning: invisible
or bidi characters inside words, Unicode tag characters that carry a hidden ASCII message,
homoglyphs (Cyrillic "о" for Latin "o"), leetspeak, letters spaced apart, or the whole
phrase in base64, hex or percent-encoding. `views` undoes each of these once per segment;
rules scan every view, and a match in any of them counts.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from lictor.enforcement.byte_regex import ByteRegex, ByteRegexSet
from lictor.rules.regex_syntax import compile_re2

ZERO_WIDTH = "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE = re.compile(f"[{ZERO_WIDTH}{BIDI}\u206a-\u206f\ufe00-\ufe0f]")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")

# Homoglyphs that NFKC leaves alone: Cyrillic and Greek letters that look Latin.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ɡ": "g", "ӏ": "l", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H",
    "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J",
    "Ѕ": "S", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t",
    "υ": "u", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K",
    "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "!": "i", "|": "l"})
# The same on ASCII bytes: `bytes.translate` is several times faster than `str.translate`.
_LEET_BYTES = bytes.maketrans(b"013457@$!|", b"oieastasil")
# Run-finding patterns use RE2 over the folded text's bytes, encoded once: linear time, and
# ~10x faster than `re` on these (which retry a bounded repeat at every position).
_HAS_LEET = r"[A-Za-z][0-9@$!|]|[0-9@$!|][A-Za-z]"
# Four or more single letters separated by one space or punctuation: "i g n o r e".
_SPACED = r"\b(?:[A-Za-z][ ._\-*]){3,}[A-Za-z]\b"
_SPACED_SUB = compile_re2(_SPACED)
_SPACERS = re.compile(r"[ ._\-*]")
_WHITESPACE = re.compile(r"\s+")

_BASE64_RUN = ByteRegex(r"[A-Za-z0-9+/]{24,}={0,2}|[A-Za-z0-9_\-]{24,}={0,2}")
_HEX_RUN = ByteRegex(r"\b(?:[0-9A-Fa-f]{2}){12,}\b")
# Which views a text needs, found in one pass: most texts need none, or only leetspeak.
_FEATURES = ByteRegexSet([_HAS_LEET, _SPACED, _BASE64_RUN.pattern, _HEX_RUN.pattern, "%"])
_LEET_FEATURE, _SPACED_FEATURE = 0, 1
_ENCODED_FEATURES = frozenset({2, 3, 4})
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
MIN_ESCAPES = 3  # a token with this many %XX escapes is read as percent-encoded text
MAX_DECODED = 8  # decoded runs per segment: bounded work on hostile input


@dataclass(slots=True, frozen=True)
class Normalized:
    """What a segment looks like to the rules, and what was hidden in it."""

    views: tuple[tuple[str, str], ...]  # (kind, text): "text" first, then what was recovered
    invisible: frozenset[str]  # categories removed: "zero_width", "bidi", "tag"


def _printable(data: bytes) -> str | None:
    """Decoded bytes as text if they look like text a model would read."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or sum(ch.isprintable() or ch.isspace() for ch in text) < 0.9 * len(text):
        return None
    return text


def _decoded_runs(text: str, data: bytes) -> list[tuple[str, str]]:
    """Base64, hex and percent-encoded runs of `text` (`data` is its UTF-8), decoded."""
    found: list[tuple[str, str]] = []
    for start, end in _BASE64_RUN.spans(data):
        run = data[start:end].decode()
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), altchars=b"-_"
                                   if ("-" in run or "_" in run) else None)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded:
            found.append(("base64", decoded))
        if len(found) >= MAX_DECODED:
            return found
    for start, end in _HEX_RUN.spans(data):
        decoded = _printable(bytes.fromhex(data[start:end].decode()))
        if decoded:
            found.append(("hex", decoded))
    if "%" in text:  # percent-encoded text has no whitespace: look at tokens
        found.extend(
            ("percent-encoded", unquote(token))
            for token in text.split()
            if len(_PERCENT_ESCAPE.findall(token)) >= MIN_ESCAPES
        )
    return found[:MAX_DECODED]


def _fold(text: str) -> str:
    """NFKC, homoglyphs to Latin, runs of whitespace to one space."""
    if text.isascii():
        if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
            return text  # its only whitespace is single spaces inside: already folded
        return " ".join(text.split())
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).translate(_CONFUSABLES))


def tool_argument_text(raw: str) -> str:
    """A tool call's JSON arguments as the values they carry, one per line.

    Rules must see `os.system(` and `ignore`, not their JSON encodings (`\\n`, `\\u0069`),
    which would hide word boundaries and letters. Text that is not JSON is left as is.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    parts: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed([*item.keys(), *item.values()]))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif item is not None:
            parts.append(str(item))
    return "\n".join(parts)


def normalize(text: str) -> Normalized:
    """Every view of `text` that rules should scan, computed once per segment."""
    invisible: set[str] = set()
    hidden: list[str] = []
    if not text.isascii():
        if _TAGS.search(text):
            invisible.add("tag")
            # Tag characters mirror ASCII (U+E0041 is "A"): recover the hidden message.
            hidden = ["".join(chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E)
                      for run in _TAGS.findall(text)]
            text = _TAGS.sub("", text)
        for ch in set(_INVISIBLE.findall(text)):
            invisible.add("bidi" if ch in BIDI else "zero_width")
        if invisible - {"tag"}:
            text = _INVISIBLE.sub("", text)
    folded = _fold(text)
    data = folded.encode()
    present = _FEATURES.present(data)
    views = [("text", folded)]
    if _LEET_FEATURE in present:
        views.append(("leetspeak", data.translate(_LEET_BYTES).decode() if len(data) == len(folded)
                      else folded.translate(_LEET)))
    if _SPACED_FEATURE in present:
        views.append(("spaced letters", _SPACED_SUB.sub(
            lambda m: _SPACERS.sub("", m.group(0)), folded)))
    views.extend(("tag characters", _fold(h)) for h in hidden if h)
    if present & _ENCODED_FEATURES:
        views.extend((kind, _fold(d)) for kind, d in _decoded_runs(folded, data))
    return Normalized(tuple(views), frozenset(invisible))
