"""All pattern rules of a policy compiled into one RE2 regular expression, scanned once.

Each pattern becomes a named group; a match names its rule. Alternatives are ordered by
verdict severity so, at one position, an enforced block wins over a flag or a shadow rule.
RE2 scans in linear time: about 4 us for 700 characters here, against 115 us for one
combined Python `re` of the same patterns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lictor.enforcement.byte_regex import ByteRegex, char_offset, next_char
from lictor.enforcement.types import matches_tool
from lictor.rules.policy import PatternRule, RuleSpec

_ORDER = {"block": 0, "mask": 1, "flag": 2}


@dataclass(slots=True, frozen=True)
class PatternHit:
    spec: RuleSpec
    start: int
    end: int


class PatternScanner:
    """One compiled regex per (direction, trust label) view of the policy's pattern rules."""

    __slots__ = ("_groups", "_regex_by_view")

    def __init__(self, rules: tuple[PatternRule, ...]) -> None:
        ordered = sorted(rules, key=lambda r: (r.spec.shadow, _ORDER[r.spec.verdict]))
        self._groups: dict[str, RuleSpec] = {}
        parts: list[tuple[RuleSpec, str]] = []
        for i, rule in enumerate(ordered):
            for j, pattern in enumerate(rule.patterns):
                name = f"r{i}_{j}"
                self._groups[name] = rule.spec
                body = pattern if rule.case_sensitive else f"(?i:{pattern})"
                parts.append((rule.spec, f"(?P<{name}>{body})"))
        self._regex_by_view: dict[tuple[str, str, str], _ViewRegex | None] = {}
        for direction in ("request", "response"):
            for trust in ("system", "user", "assistant", "tool", "retrieved"):
                for where in ("text", "tool_arguments"):
                    chosen = [
                        p for spec, p in parts
                        if direction in spec.directions and trust in spec.trust
                        and where in spec.where
                    ]
                    self._regex_by_view[(direction, trust, where)] = (
                        _ViewRegex(ByteRegex("|".join(chosen)), self._groups) if chosen else None
                    )

    def scan(
        self, text: str, direction: str, trust: str, tool: str = ""
    ) -> list[PatternHit]:
        """Every rule that matches `text`, once per rule, leftmost match first.

        `tool` names the tool whose arguments `text` is; empty for message text.
        """
        view = self._regex_by_view.get((direction, trust, "tool_arguments" if tool else "text"))
        if view is None:
            return []
        data = text.encode()
        ascii_text = len(data) == len(text)
        hits: list[PatternHit] = []
        seen: set[str] = set()
        pos = 0
        while pos <= len(data):  # RE2 still finds an empty match when pos is past the end
            spans = view.regex.search(data, pos)
            if spans is None:
                return hits
            spec = view.rule_of(spans)
            start, end = spans[0]
            if spec.rule_id not in seen and (not tool or matches_tool(tool, spec.tools)):
                seen.add(spec.rule_id)
                if not ascii_text:
                    start, end = char_offset(data, start), char_offset(data, end)
                hits.append(PatternHit(spec, start, end))
            pos = next_char(data, spans[0][0])  # a later, overlapping match: another rule's?
        return hits


@dataclass(slots=True, frozen=True)
class _ViewRegex:
    """One view's alternation of rule patterns, and which group names which rule."""

    regex: ByteRegex
    groups: dict[str, RuleSpec]

    def rule_of(self, spans: Sequence[tuple[int, int]]) -> RuleSpec:
        """The rule whose group matched: the first named group that took part."""
        for index, name in self.regex.group_names.items():
            if spans[index][0] >= 0 and name in self.groups:
                return self.groups[name]
        raise LookupError("a match of no rule's group")  # the alternation has only rule groups
