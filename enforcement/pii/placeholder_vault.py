"""Reversible masking: PII values become `<LABEL_n>` placeholders and come back on the way out.

A vault lives for one request of one agent, so a placeholder can only ever be restored to a
value that the same request sent; it is never shared.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter

from lictor.enforcement.pii.recognizers import ENTITY_LABELS
from lictor.enforcement.pii.scanner import PiiMatch

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z_]*)_(\d+)>")
_START = itemgetter(1)  # a PiiMatch's start


@dataclass(slots=True, frozen=True)
class VaultDelta:
    """What masking one text added to a vault, to replay it without masking again."""

    entries: tuple[tuple[str, str, bool], ...]  # (value, placeholder, is PII)
    reserved: tuple[str, ...]  # placeholder-shaped text seen in the input


class PlaceholderVault:
    """Per-request map between PII values and their placeholders.

    The same value always gets the same placeholder, numbered per label in order of first
    appearance. Placeholder-shaped text already present in an input is never confused with a
    real placeholder: its number is reserved if still free, and if the vault already handed
    that placeholder out, the typed text is itself masked as a literal, so `restore` gives
    back exactly what the user typed.
    """

    __slots__ = ("_counts", "_last", "_literals", "_placeholder_of", "_reserved", "_value_of")

    def __init__(self) -> None:
        self._placeholder_of: dict[str, str] = {}  # value -> placeholder
        self._value_of: dict[str, str] = {}  # placeholder -> value
        self._last: dict[str, int] = {}  # label -> highest number handed out
        self._reserved: dict[str, None] = {}  # placeholder-shaped text seen (ordered set)
        self._counts: dict[str, int] = {}  # label -> distinct PII values (no literals)
        self._literals: set[str] = set()  # placeholders standing for typed placeholder text

    def mask_with_delta(self, text: str, matches: Sequence[PiiMatch]) -> tuple[str, VaultDelta]:
        """`mask`, and what it added to the vault (for `apply` on an identical prefix)."""
        entries, reserved = len(self._placeholder_of), len(self._reserved)
        masked = self.mask(text, matches)
        added = tuple(
            (value, placeholder, placeholder not in self._literals)
            for value, placeholder in islice(self._placeholder_of.items(), entries, None)
        )
        return masked, VaultDelta(added, tuple(islice(self._reserved, reserved, None)))

    def snapshot(self) -> PlaceholderVault:
        """A copy of this vault's state, to resume a later request from."""
        copy = PlaceholderVault()
        copy._placeholder_of = dict(self._placeholder_of)
        copy._value_of = dict(self._value_of)
        copy._last = dict(self._last)
        copy._reserved = dict(self._reserved)
        copy._counts = dict(self._counts)
        copy._literals = set(self._literals)
        return copy

    def apply(self, delta: VaultDelta) -> None:
        """Replay what masking a text added, as if it had been masked here again."""
        for placeholder in delta.reserved:
            self._reserved[placeholder] = None
        for value, placeholder, is_pii in delta.entries:
            label, _, number = placeholder[1:-1].rpartition("_")
            self._placeholder_of[value] = placeholder
            self._value_of[placeholder] = value
            self._last[label] = max(self._last.get(label, 0), int(number))
            if is_pii:
                self._counts[label] = self._counts.get(label, 0) + 1
            else:
                self._literals.add(placeholder)

    def mask(self, text: str, matches: Sequence[PiiMatch]) -> str:
        """`text` with every match replaced by its placeholder."""
        spans: list[tuple[int, int, str, str, bool]] = []  # start, end, label, value, is_pii
        if "<" in text:
            for forged in PLACEHOLDER_RE.finditer(text):
                if forged.group(0) in self._value_of:
                    spans.append((*forged.span(), forged.group(1), forged.group(0), False))
                else:
                    self._reserved[forged.group(0)] = None
        literals = list(spans)
        size = len(text)
        for entity, start, end, _ in sorted(matches, key=_START):
            if not 0 <= start < end <= size:
                raise ValueError(f"match {start}:{end} outside the text")
            label = ENTITY_LABELS.get(entity)
            if label is None:
                raise ValueError(f"no placeholder label for entity {entity!r}")
            # A match never contains '<' or '>', so it is inside a literal or clear of it;
            # inside, it is already hidden by the literal's placeholder.
            if not literals or not any(s <= start and end <= e for s, e, *_ in literals):
                spans.append((start, end, label, text[start:end], True))
        if not spans:
            return text
        spans.sort()
        parts: list[str] = []
        pos = 0
        known = self._placeholder_of
        for start, end, label, value, is_pii in spans:
            if start < pos:
                raise ValueError(f"overlapping matches at {start}")
            parts.append(text[pos:start])
            placeholder = known.get(value)  # `_placeholder`'s first step, without a call
            parts.append(placeholder if placeholder is not None
                         else self._placeholder(label, value, is_pii))
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    def restore(self, text: str) -> str:
        """`text` with every placeholder of this vault replaced by its value; others stay."""
        if not self._value_of or "<" not in text:
            return text
        value_of = self._value_of
        return PLACEHOLDER_RE.sub(lambda m: value_of.get(m.group(0), m.group(0)), text)

    def originals(self) -> dict[str, str]:
        """Placeholder -> the personal data it stands for (typed placeholder text left
        out): what `audit.keep_originals` seals for disputes."""
        return {p: v for p, v in self._value_of.items() if p not in self._literals}

    def entities(self) -> dict[str, int]:
        """Distinct masked values per label, for audit: counts only, never values."""
        return dict(self._counts)

    def __len__(self) -> int:
        return sum(self._counts.values())

    def __bool__(self) -> bool:
        return bool(self._counts)

    def __repr__(self) -> str:
        return f"PlaceholderVault({self._counts!r})"

    def _placeholder(self, label: str, value: str, is_pii: bool) -> str:
        placeholder = self._placeholder_of.get(value)
        if placeholder is not None:
            return placeholder
        number = self._last.get(label, 0)
        while True:
            number += 1
            placeholder = f"<{label}_{number}>"
            if placeholder not in self._reserved:
                break
        self._last[label] = number
        self._placeholder_of[value] = placeholder
        self._value_of[placeholder] = value
        if is_pii:
            self._counts[label] = self._counts.get(label, 0) + 1
        else:
            self._literals.add(placeholder)
        return placeholder
