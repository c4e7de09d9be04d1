"""PhoneValidity gives phonenumbers.is_valid_number's answer, number for number."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS

from lictor.enforcement.pii.phone_validity import PhoneValidity


def _examples() -> list[phonenumbers.PhoneNumber]:
    """Every region's example number of every type, and of every non-geographic code."""
    found = []
    for region in sorted(SUPPORTED_REGIONS):
        for kind in PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append(number)
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.append(number)
    return found


def _variants(number: phonenumbers.PhoneNumber, rnd: random.Random) -> list[str]:
    """The example as text, then with digits changed, one more, one fewer, or a zero."""
    digits = str(number.national_number)
    changed = "".join(rnd.choice("0123456789") if rnd.random() < 0.3 else d for d in digits)
    texts = [digits, changed, digits + rnd.choice("0123456789"), digits[:-1], "0" + digits]
    return [f"+{number.country_code} {text}" for text in texts]


def test_agrees_with_phonenumbers_on_examples_and_near_misses() -> None:
    validity, rnd = PhoneValidity(), random.Random(7)
    texts = [t for number in _examples() for t in _variants(number, rnd)]
    texts += [f"+{rnd.choice(list(COUNTRY_CODE_TO_REGION_CODE))} "
              f"{rnd.randrange(10 ** rnd.randint(3, 12))}" for _ in range(3000)]
    texts += [f"({rnd.randrange(100, 1000)}) {rnd.randrange(100, 1000)}-{rnd.randrange(10000):04d}"
              for _ in range(1000)]  # national numbers, read as US ones
    checked = valid = 0
    for text in texts:
        try:
            number = phonenumbers.parse(text, "US")
        except phonenumbers.NumberParseException:
            continue
        expected = phonenumbers.is_valid_number(number)
        assert validity.is_valid(number) == expected, text
        checked, valid = checked + 1, valid + expected
    assert checked > 5000 and valid > 1000, (checked, valid)  # both answers well covered
