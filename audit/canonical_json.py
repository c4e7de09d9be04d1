"""RFC 8785 JSON Canonicalization Scheme (JCS).

The audit chain hashes records, so the same logical record must always
serialize to the same bytes. JCS gives that: sorted keys (UTF-16 code
units), no whitespace, ECMAScript number formatting, minimal string
escaping, UTF-8 output.

Deviation, on purpose: Python ``int`` values are written exactly, even
beyond +/-2**53 where JCS (via I-JSON) would round them to an IEEE double.
Rounding would silently change audit data; exact output keeps the hash
honest. Producers that need cross-language agreement should keep integers
within +/-2**53 or send large numbers as strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

__all__ = ["canonicalize", "format_number"]

# ``encode_basestring`` is the C routine behind json.dumps(ensure_ascii=False).
# It escapes exactly what JCS escapes: '"', '\\', \b \t \n \f \r, and other
# code points below U+0020 as lowercase \u00xx; everything else is literal.
# tests/test_canonical_json.py checks this for every code point below U+0800.
_encode_str: Callable[[str], str] = encode_basestring


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of a JSON-compatible value.

    Accepts dict (str keys only), list, tuple, str, int, float, bool and None.
    Raises TypeError for other types or non-str keys, ValueError for NaN or
    infinities and for strings with lone surrogates (not valid Unicode).
    """
    parts: list[str] = []
    _encode(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"string is not valid Unicode (lone surrogate): {exc}") from None


def format_number(value: float) -> str:
    """Format a float like ECMAScript Number.prototype.toString, as JCS requires."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"JSON cannot represent {value!r}")
    if value == 0.0:
        return "0"  # also -0.0, which ECMAScript prints as "0"
    text = float.__repr__(value)
    if "e" not in text:
        # repr() is positional for 1e-4 <= |x| < 1e16 and then already uses the
        # shortest round-trip digits, exactly like ECMAScript; only "1.0" differs.
        return text[:-2] if text.endswith(".0") else text
    return _format_exponent_repr(text)


def _format_exponent_repr(text: str) -> str:
    """Rewrite a scientific-notation repr() (e.g. '1.5e-05') into ECMAScript form."""
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).rstrip("0")
    k = len(digits)
    # ECMAScript's n: the value is 0.d1d2...dk * 10**n.
    n = int(exp_text) + 1
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        exponent = n - 1
        exp_out = f"e+{exponent}" if exponent >= 0 else f"e-{-exponent}"
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + exp_out
    return sign + out


def _utf16_key(key: str) -> bytes:
    """Sort key giving UTF-16 code-unit order (big-endian bytes compare the same way)."""
    return key.encode("utf-16-be", "surrogatepass")


def _encode(value: Any, parts: list[str]) -> None:
    """Append the canonical text of ``value`` to ``parts`` (recursive).

    Exact-type checks come first because they are the hot path; subclasses
    (IntEnum, str enums, OrderedDict, ...) fall through to isinstance checks.
    """
    kind = type(value)
    if kind is str:
        parts.append(_encode_str(value))
    elif kind is dict:
        _encode_dict(value, parts)
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif kind is int:
        parts.append(int.__repr__(value))
    elif kind is float:
        parts.append(format_number(value))
    elif kind is list or kind is tuple:
        _encode_array(value, parts)
    elif isinstance(value, str):
        parts.append(_encode_str(value))
    elif isinstance(value, int):
        # int.__repr__ so IntEnum and friends print as numbers, not names.
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        parts.append(format_number(value))
    elif isinstance(value, dict):
        _encode_dict(value, parts)
    elif isinstance(value, list | tuple):
        _encode_array(value, parts)
    else:
        raise TypeError(f"cannot canonicalize value of type {type(value).__name__}")


def _encode_array(value: list[Any] | tuple[Any, ...], parts: list[str]) -> None:
    """Append a JSON array, keeping element order."""
    separator = "["
    for item in value:
        parts.append(separator)
        separator = ","
        _encode(item, parts)
    parts.append("]" if value else "[]")


def _encode_dict(value: dict[Any, Any], parts: list[str]) -> None:
    """Append a JSON object with members sorted by UTF-16 code units."""
    keys = list(value)
    all_ascii = True
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be str, not {type(key).__name__}")
        if all_ascii and not key.isascii():
            all_ascii = False
    # Code-point order equals UTF-16 order unless a key holds a character above
    # U+FFFF; all-ASCII keys (the common case) skip the encoding step.
    if all_ascii:
        keys.sort()
    else:
        keys.sort(key=_utf16_key)
    separator = "{"
    for key in keys:
        parts.append(separator)
        separator = ","
        parts.append(_encode_str(key))
        parts.append(":")
        item = value[key]
        if type(item) is str:
            parts.append(_encode_str(item))
        else:
            _encode(item, parts)
    parts.append("}" if keys else "{}")
