"""Fast PII scan with presidio's recognizer semantics, without presidio's per-call overhead.

Every match of a recognizer is made only of its hint's `allowed` characters and holds enough
`seeds` (digits, '@', ...), so each pattern runs only on the few maximal runs of allowed
characters that qualify instead of over the whole text: plain prose costs a couple of C-level
searches. Inside a run the patterns, flags, validation and scores are presidio's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import regex
from presidio_analyzer import PatternRecognizer
from presidio_analyzer.predefined_recognizers import IbanRecognizer

from lictor.enforcement.pii.recognizers import SCAN_HINTS, ScanHint, build_recognizers

# Overlap tie-break after length and score: earlier wins.
ENTITY_PRIORITY: tuple[str, ...] = (
    "CN_RESIDENT_ID",
    "CREDIT_CARD",
    "CN_BANK_CARD",
    "IBAN_CODE",
    "US_SSN",
    "EMAIL_ADDRESS",
    "IP_ADDRESS",
    "CN_MOBILE",
    "PHONE_NUMBER",
)

# Lookarounds of the patterns read fewer characters than this past a run of allowed characters.
_LOOKAHEAD_MARGIN = 32


@dataclass(slots=True, frozen=True)
class PiiMatch:
    """One detected PII value: `text[start:end]` is of type `entity` with confidence `score`."""

    entity: str
    start: int
    end: int
    score: float


@dataclass(slots=True)
class _Recognizer:
    entity: str
    priority: int
    recognizer: Any
    patterns: list[tuple[Any, float, tuple[str, ...]]]  # compiled regex, score, needed substrings
    min_seeds: int
    validates: bool
    invalidates: bool
    group_fallback: bool  # presidio's IBAN: retry shorter group ends when validation fails


class _WindowFinder:
    """Finds the maximal runs of `allowed` characters holding at least one seed character."""

    def __init__(self, hint: ScanHint) -> None:
        allowed = hint.allowed
        self._forward = [regex.compile(f"[{seed}][{allowed}]*") for seed in hint.seeds]
        # ASCII text takes a plain-range seed search (regex's fast path); same result there.
        self._forward_ascii = [
            regex.compile(f"[{seed.replace(chr(92) + 'd', '0-9')}][{allowed}]*")
            for seed in hint.seeds
        ]
        self._backward = regex.compile(f"[{allowed}]*", regex.REVERSE)
        self._seed_count = regex.compile(f"[{''.join(hint.seeds)}]")

    def windows(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, number of seed characters) for each qualifying run, by start."""
        found: dict[int, int] = {}
        for forward in self._forward_ascii if text.isascii() else self._forward:
            for match in forward.finditer(text):
                start, end = match.span()
                if start and (back := self._backward.match(text, 0, start)):
                    start = back.start()
                found[start] = end
        return [
            (start, end, len(self._seed_count.findall(text, start, end)))
            for start, end in sorted(found.items())
        ]


class PiiScanner:
    """Detects PII in text; compile once per policy load, then `scan` on the hot path."""

    def __init__(self, entities: Iterable[str], min_score: float = 0.5) -> None:
        self.min_score = min_score
        groups: dict[tuple[str, tuple[str, ...]], list[_Recognizer]] = {}
        finders: dict[tuple[str, tuple[str, ...]], _WindowFinder] = {}
        for rec in build_recognizers(entities):
            entity = rec.supported_entities[0]
            hint = SCAN_HINTS[entity]
            key = (hint.allowed, hint.seeds)
            finders.setdefault(key, _WindowFinder(hint))
            groups.setdefault(key, []).append(self._compile(rec, entity, hint))
        self.entities: tuple[str, ...] = tuple(
            r.entity for group in groups.values() for r in group
        )
        self._groups = [(finders[key], recs) for key, recs in groups.items()]

    def _compile(self, rec: Any, entity: str, hint: ScanHint) -> _Recognizer:
        cls = type(rec)
        validates = cls.validate_result is not PatternRecognizer.validate_result
        patterns = [
            (regex.compile(p.regex, rec.global_regex_flags), p.score, hint.needs.get(p.name, ()))
            for p in rec.patterns
            # A score below the threshold can only be lifted by validate_result.
            if p.score > 0 and (validates or p.score >= self.min_score)
        ]
        return _Recognizer(
            entity=entity,
            priority=ENTITY_PRIORITY.index(entity),
            recognizer=rec,
            patterns=patterns,
            min_seeds=hint.min_seeds,
            validates=validates,
            invalidates=cls.invalidate_result is not PatternRecognizer.invalidate_result,
            group_fallback=isinstance(rec, IbanRecognizer),
        )

    def scan(self, text: str) -> list[PiiMatch]:
        """Non-overlapping matches scoring at least `min_score`, sorted by start."""
        found: list[tuple[int, int, float, int, str]] = []
        size = len(text)
        for finder, recs in self._groups:
            for start, end, seeds in finder.windows(text):
                stop = min(size, end + _LOOKAHEAD_MARGIN)
                for rec in recs:
                    if seeds >= rec.min_seeds:
                        found.extend(self._match_run(rec, text, start, end, stop))
        return _resolve(found)

    def _match_run(
        self, rec: _Recognizer, text: str, start: int, end: int, stop: int
    ) -> Iterator[tuple[int, int, float, int, str]]:
        for compiled, pattern_score, needs in rec.patterns:
            if any(text.find(s, start, end) < 0 for s in needs):
                continue
            for match in compiled.finditer(text, start, stop):
                if match.start() >= end:
                    break  # belongs to the next run, which is scanned on its own
                for m_start, m_end in _candidate_spans(match, rec.group_fallback):
                    score = self._score(rec, text[m_start:m_end], pattern_score)
                    if score > 0:
                        if score >= self.min_score:
                            yield (m_start, m_end, score, rec.priority, rec.entity)
                        break

    @staticmethod
    def _score(rec: _Recognizer, value: str, score: float) -> float:
        """presidio's PatternRecognizer scoring: validation sets 1.0 or 0, invalidation 0."""
        if not value:
            return 0.0
        if rec.validates:
            valid = rec.recognizer.validate_result(value)
            if valid is not None:
                score = 1.0 if valid else 0.0
        if rec.invalidates and rec.recognizer.invalidate_result(value):
            score = 0.0
        return score


def _candidate_spans(match: Any, group_fallback: bool) -> Iterator[tuple[int, int]]:
    start, end = match.span()
    if not group_fallback:
        yield start, end
        return
    # Mirrors IbanRecognizer.__analyze_patterns: last group's end first, then earlier ones.
    for group in reversed(range(1, len(match.groups()) + 1)):
        group_end = match.span(group)[1]
        yield start, group_end if group_end > 0 else end


def _resolve(found: list[tuple[int, int, float, int, str]]) -> list[PiiMatch]:
    """Longer match wins an overlap, then higher score, then entity priority."""
    if not found:
        return []
    found.sort(key=lambda f: (f[0] - f[1], -f[2], f[3], f[0]))
    kept: list[tuple[int, int, float, int, str]] = []
    for cand in found:
        if all(cand[1] <= k[0] or k[1] <= cand[0] for k in kept):
            kept.append(cand)
    kept.sort()
    return [PiiMatch(entity, start, end, score) for start, end, score, _, entity in kept]
