"""RFC 8785 (JCS) conformance of lictor.audit.canonical_json."""

from __future__ import annotations

import enum
import json
import math
import random
import re
import struct

import pytest

from lictor.audit.canonical_json import canonicalize, format_number

# Shape of ECMAScript Number-to-String output: no trailing fraction zeros,
# exponent only as e+N / e-N without leading zeros.
_ES_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d*[1-9])?|-?[1-9](\.\d*[1-9])?e[+-][1-9]\d*")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _reference_string(text: str) -> str:
    """JCS string rules written out one character at a time (slow but obvious)."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def test_rfc8785_section_3_2_2_sample() -> None:
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],'
        '"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(value) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_uses_utf16_code_units() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = list(json.loads(canonicalize(value)).values())
    # Code-point order would put U+FB33 before U+1F600; UTF-16 puts the
    # surrogate pair (0xD83D...) first.
    assert order == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


@pytest.mark.parametrize(
    ("bits", "expected"),
    [  # RFC 8785 appendix B
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert format_number(value) == expected
    assert canonicalize(value) == expected.encode("ascii")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e30, "1e+30"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1.5e-5, "0.000015"),
        (-0.0, "0"),
        (1.0, "1"),
        (-2.0, "-2"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.25e22, "1.25e+22"),
        (-1.5e-9, "-1.5e-9"),
        (333333333.33333329, "333333333.3333333"),
        (float(2**60), "1152921504606847000"),
    ],
)
def test_number_formatting(value: float, expected: str) -> None:
    assert format_number(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    with pytest.raises(ValueError):
        canonicalize({"x": [value]})


def test_random_floats_round_trip_exactly() -> None:
    rng = random.Random(8785)
    for _ in range(20_000):
        value = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if not math.isfinite(value):
            continue
        text = format_number(value)
        assert float(text) == value, text
        assert _ES_NUMBER.fullmatch(text), text


def test_integers_are_exact_including_beyond_2_pow_53() -> None:
    big = 2**64 + 1
    assert canonicalize([0, -7, big]) == f"[0,-7,{big}]".encode()


def test_bool_and_int_enum_are_json_values() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    assert canonicalize([True, False, None, Level.HIGH]) == b"[true,false,null,3]"


def test_escaping_matches_jcs_rules_for_every_bmp_code_point() -> None:
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(chars), 512):
        text = "".join(chars[start : start + 512])
        assert canonicalize(text) == _reference_string(text).encode("utf-8")


def test_escaping_details() -> None:
    assert canonicalize("\x00\x1f\x7f") == b'"\\u0000\\u001f\x7f"'
    assert canonicalize("a/b<>&\u2028") == '"a/b<>&\u2028"'.encode()
    assert canonicalize("\U0001f600") == '"\U0001f600"'.encode()


def test_lone_surrogate_is_rejected() -> None:
    with pytest.raises(ValueError):
        canonicalize({"k": "\ud800"})


def test_containers_have_no_whitespace_and_keep_array_order() -> None:
    value = {"b": [3, 1, {"z": {}, "a": []}], "a": (1, "x")}
    assert canonicalize(value) == b'{"a":[1,"x"],"b":[3,1,{"a":[],"z":{}}]}'


@pytest.mark.parametrize("value", [{1: "x"}, {None: 1}, {("a",): 1}])
def test_non_string_keys_are_rejected(value: object) -> None:
    with pytest.raises(TypeError):
        canonicalize(value)


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object(), 1j])
def test_unsupported_types_are_rejected(value: object) -> None:
    with pytest.raises(TypeError):
        canonicalize({"x": value})


def test_output_parses_back_to_the_same_value() -> None:
    value = {"q": 'é\n"', "n": [1, 2.5, -1e-300], "t": {"nested": [None, True]}}
    assert json.loads(canonicalize(value)) == value
