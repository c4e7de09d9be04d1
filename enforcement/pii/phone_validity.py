"""`phonenumbers.is_valid_number`, with each region's patterns compiled once.

phonenumbers looks up and compiles (through `re`'s cache) up to ten patterns per region on
every call, which is most of its ~30 us per number here; this walks the same metadata with
the same rules in the same order, over patterns compiled on first use per region.
tests/test_phone_validity.py checks it against phonenumbers on thousands of numbers.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers.phonemetadata import REGION_CODE_FOR_NON_GEO_ENTITY
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# A number description compiled: its possible lengths (empty: any) and its pattern.
_Desc = tuple[frozenset[int], re.Pattern[str]] | None
# The types `_number_type_helper` tries after the general description, in its order.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
          "voicemail", "fixed_line")


def _compile(desc: Any) -> _Desc:
    if desc is None or not desc.national_number_pattern:
        return None  # matches nothing, as in `_match_national_number`
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


class _Region:
    """One region's metadata, compiled: does a national number have a known type?"""

    __slots__ = ("country_code", "general", "leading_digits", "types")

    def __init__(self, metadata: Any) -> None:
        self.country_code: int = metadata.country_code
        self.general = _compile(metadata.general_desc)
        types = [_compile(getattr(metadata, name)) for name in _TYPES]
        if not metadata.same_mobile_and_fixed_line_pattern:
            types.append(_compile(metadata.mobile))
        self.types = tuple(t for t in types if t is not None)
        self.leading_digits = (re.compile(metadata.leading_digits)
                               if metadata.leading_digits is not None else None)

    def has_type(self, nsn: str) -> bool:
        """`_number_type_helper(nsn, metadata) != UNKNOWN`."""
        return _matches(nsn, self.general) and any(_matches(nsn, t) for t in self.types)


def _matches(nsn: str, desc: _Desc) -> bool:
    if desc is None:
        return False
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


class PhoneValidity:
    """`is_valid_number` over regions compiled on first use (a few hundred at most)."""

    def __init__(self) -> None:
        self._regions: dict[tuple[int, str], _Region | None] = {}

    def _region(self, country_code: int, region_code: str) -> _Region | None:
        key = (country_code, region_code)
        if key not in self._regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code,
                                                                         region_code.upper())
            self._regions[key] = _Region(metadata) if metadata is not None else None
        return self._regions[key]

    def is_valid(self, number: PhoneNumber) -> bool:
        nsn = phonenumbers.national_significant_number(number)
        country_code = number.country_code
        regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code) if country_code else None
        if country_code is None or regions is None:
            return False
        region_code: str | None = regions[0]
        if len(regions) > 1:  # `_region_code_for_number_from_list`
            region_code = None
            for candidate in regions:
                region = self._region(country_code, candidate)
                if region is None:
                    continue
                if region.leading_digits is not None:
                    if region.leading_digits.match(nsn):
                        region_code = candidate
                        break
                elif region.has_type(nsn):
                    region_code = candidate
                    break
        if region_code is None:
            return False
        region = self._region(country_code, region_code)
        if region is None or (region_code != REGION_CODE_FOR_NON_GEO_ENTITY
                              and country_code != region.country_code):
            return False
        return region.has_type(nsn)
