"""Fast PII scan with presidio's recognizer semantics, without scanning all text per pattern.

Any match of a recognizer is made only of its hint's `allowed` characters and contains an
anchor (a digit run, '@', ...), so its patterns run only on the few maximal runs of allowed
characters holding an anchor: plain prose costs a handful of C-level searches. Inside a run,
the patterns, flags, validation and scores are presidio's own.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby, pairwise
from operator import itemgetter
from typing import Any, NamedTuple

import regex

from lictor.enforcement.byte_regex import ByteRegex
from lictor.enforcement.pii.digest_cache import DigestCache
from lictor.enforcement.pii.presidio_import import IbanRecognizer, PatternRecognizer
from lictor.enforcement.pii.recognizers import SCAN_HINTS, ScanHint, build_recognizers
from lictor.rules.regex_syntax import RegexError

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

# Lookaheads of the patterns read at most 2 characters past a match (and a match ends inside
# its run); scanning this far past a run keeps them exact.
_LOOKAHEAD_MARGIN = 8
# Lookbehinds read at most this many characters before a match (a test checks every pattern):
# a run's matches are a function of the run and these margins, so they are cached by them.
LOOKBEHIND_MARGIN = 4
_UNICODE_DIGIT = "\\d"
_DIGIT = regex.compile(r"\d")
_OUT = b" "  # a disallowed byte in a run mask
# A hint's anchor of the form "a digit, then at least k allowed characters".
_DIGIT_LEAD = re.compile(r"\[\\d\]\[(.*)\]\{(\d+),\}")
# A candidate match: start, end, score, entity priority, entity.
_Found = tuple[int, int, float, int, str]
# Cached validation verdicts: keep the pattern score, validated (1.0), dropped (0).
_KEEP, _VALID, _DROP = 0, 1, 2


class PiiMatch(NamedTuple):
    """One detected PII value: `text[start:end]` is of type `entity` with confidence `score`.

    A named tuple: cheaper to make than a frozen dataclass, and there are many."""

    entity: str
    start: int
    end: int
    score: float


# What the named tuple's own `__new__` calls, without its Python frame: (entity, start, end,
# score) in field order.
_new_match = tuple.__new__


@dataclass(slots=True)
class _Recognizer:
    entity: str
    priority: int
    recognizer: Any
    # regex, score, digits, substrings, core (see ScanHint)
    patterns: list[tuple[Any, float, int, tuple[str, ...], Any]]
    min_digits: int
    validates: bool
    invalidates: bool
    group_fallback: bool  # presidio's IBAN: retry shorter group ends when validation fails
    reach: tuple[str, int, int] | None  # literal anchor, characters before, after (ScanHint)
    # per pattern, for a hint with a reach: the same pattern in RE2, for ASCII text (where
    # RE2's leftmost-first matches are the `regex` module's, found in linear time)
    linear: tuple[ByteRegex | None, ...]


class _WindowFinder:
    """Finds the maximal runs of allowed characters that contain an anchor match."""

    def __init__(self, hint: ScanHint) -> None:
        ascii_allowed = hint.allowed.replace(_UNICODE_DIGIT, "0-9")
        self._forward = [regex.compile(f"(?:{a})[{hint.allowed}]*") for a in hint.anchors]
        self._backward = regex.compile(f"[{hint.allowed}]*", regex.REVERSE)
        # On ASCII text one RE2 pass finds the runs: from a run's first character, any
        # anchor, to its last (leftmost-first, greedy); `\d` is `0-9` there.
        anchors = "|".join(a.replace(_UNICODE_DIGIT, "0-9") for a in hint.anchors)
        self._ascii_runs = ByteRegex(f"[{ascii_allowed}]*(?:{anchors})[{ascii_allowed}]*")
        # Faster still for the two common anchor shapes, on a mask of the text's bytes
        # (allowed digits -> '0', other allowed characters -> 'a', the rest -> ' '): one
        # literal character ('@'), or a digit and at least k allowed characters.
        self._mask = _ascii_mask(ascii_allowed)
        self._literal: bytes | None = None
        self._digit_lead: re.Pattern[bytes] | None = None
        anchor = hint.anchors[0] if len(hint.anchors) == 1 else ""
        digit_lead = _DIGIT_LEAD.fullmatch(anchor)
        if len(anchor) == 1 and anchor.isascii() and re.escape(anchor) == anchor \
                and self._mask[ord(anchor)] != ord(_OUT):
            self._literal = anchor.encode()
        elif digit_lead is not None and digit_lead[1] == hint.allowed:
            self._digit_lead = re.compile(b"0[0a]{%d}" % int(digit_lead[2]))

    def windows(self, text: str, data: bytes | None) -> list[tuple[int, int]]:
        """(start, end) of each qualifying run, by start; `data` is the text's ASCII bytes,
        or None when the text is not ASCII."""
        if data is not None:
            if self._literal is not None:
                return _literal_runs(data, self._literal, self._mask)
            if self._digit_lead is not None:
                return _digit_lead_runs(data, self._digit_lead, self._mask)
            return list(self._ascii_runs.spans(data))
        found: dict[int, int] = {}
        for forward in self._forward:
            for match in forward.finditer(text):
                start, end = match.span()
                if start and (back := self._backward.match(text, 0, start)):
                    start = back.start()
                found[start] = end
        return sorted(found.items())


def _literal_runs(data: bytes, literal: bytes, table: bytes) -> list[tuple[int, int]]:
    """The runs around each occurrence of a literal anchor character, by `find`s on the
    mask; `pos` is 0 or a disallowed byte at each step, so each byte is read O(1) times."""
    runs: list[tuple[int, int]] = []
    anchor = data.find(literal)
    if anchor < 0:
        return runs
    mask = data.translate(table)
    pos, size = 0, len(data)
    while anchor >= 0:
        start = mask.rfind(_OUT, pos, anchor) + 1  # -1 only when pos is 0
        end = mask.find(_OUT, anchor)
        if end < 0:
            end = size
        runs.append((start, end))
        pos = end
        anchor = data.find(literal, end)
    return runs


def _digit_lead_runs(data: bytes, digit_lead: re.Pattern[bytes],
                     table: bytes) -> list[tuple[int, int]]:
    """The runs holding a digit followed by k allowed characters: a run qualifies iff its
    mask matches `0[0a]{k}` (its first digit then does too)."""
    runs: list[tuple[int, int]] = []
    mask = data.translate(table)
    search = digit_lead.search
    pos, size = 0, len(data)
    while (match := search(mask, pos)) is not None:
        anchor = match.start()
        start = mask.rfind(_OUT, pos, anchor) + 1
        end = mask.find(_OUT, match.end())
        if end < 0:
            end = size
        runs.append((start, end))
        pos = end
    return runs


def _ascii_mask(ascii_allowed: str) -> bytes:
    """A `bytes.translate` table: allowed ASCII digits -> '0', other allowed ASCII bytes ->
    'a', every other byte -> ' ' (classified by RE2 itself, as the run pattern would)."""
    member = ByteRegex(f"[{ascii_allowed}]")
    table = bytearray(_OUT * 256)
    for byte in range(128):
        if member.search(bytes((byte,))) is not None:
            table[byte] = ord("0") if chr(byte).isdigit() else ord("a")
    return bytes(table)


class PiiScanner:
    """Detects PII in text; compile once per policy load, then `scan` on the hot path.

    Validation verdicts (phonenumbers alone costs ~50 us a number, and chat history repeats
    values on every turn) and each run's matches (a message names the same address again and
    again) are remembered under keyed BLAKE2 digests, so the caches never hold a value; each
    is emptied when it reaches `VERDICT_CACHE_SIZE` entries.
    """

    VERDICT_CACHE_SIZE = 4096

    def __init__(self, entities: Iterable[str], min_score: float = 0.5) -> None:
        self.min_score = min_score
        recognizers = build_recognizers(entities)
        self.entities: tuple[str, ...] = tuple(r.supported_entities[0] for r in recognizers)
        # Recognizers whose hints share the allowed characters and anchors share the runs.
        groups: dict[tuple[str, tuple[str, ...]], list[_Recognizer]] = {}
        finders: dict[tuple[str, tuple[str, ...]], _WindowFinder] = {}
        for rec, entity in zip(recognizers, self.entities, strict=True):
            hint = SCAN_HINTS[entity]
            key = (hint.allowed, hint.anchors)
            finders.setdefault(key, _WindowFinder(hint))
            groups.setdefault(key, []).append(self._compile(rec, entity, hint))
        # (finder, recognizers, whether any of them has a minimum number of digits)
        self._groups = [
            (finders[key], recs, any(p[2] for rec in recs for p in rec.patterns))
            for key, recs in groups.items()
        ]
        self._verdicts: DigestCache[int] = DigestCache(self.VERDICT_CACHE_SIZE)
        # a run in its margins -> its matches, as offsets from the run's start
        self._runs: DigestCache[tuple[_Found, ...]] = DigestCache(self.VERDICT_CACHE_SIZE)

    def _compile(self, rec: Any, entity: str, hint: ScanHint) -> _Recognizer:
        cls = type(rec)
        validates = cls.validate_result is not PatternRecognizer.validate_result
        patterns = [
            (
                regex.compile(p.regex, rec.global_regex_flags),
                p.score,
                max(hint.min_digits, hint.pattern_digits.get(p.name, 0)),
                hint.needs.get(p.name, ()),
                regex.compile(hint.cores[p.name], rec.global_regex_flags)
                if p.name in hint.cores else None,
            )
            for p in rec.patterns
            # A score below the threshold can only be lifted by validate_result.
            if p.score > 0 and (validates or p.score >= self.min_score)
        ]
        return _Recognizer(
            entity=entity,
            priority=ENTITY_PRIORITY.index(entity),
            recognizer=rec,
            patterns=patterns,
            min_digits=hint.min_digits,
            validates=validates,
            invalidates=cls.invalidate_result is not PatternRecognizer.invalidate_result,
            group_fallback=isinstance(rec, IbanRecognizer),
            reach=(hint.anchors[0], *hint.reach) if hint.reach is not None else None,
            linear=tuple(_linear(p.regex) if hint.reach is not None else None
                         for p in rec.patterns
                         if p.score > 0 and (validates or p.score >= self.min_score)),
        )

    def scan(self, text: str) -> list[PiiMatch]:
        """Non-overlapping matches scoring at least `min_score`, sorted by start."""
        found: list[_Found] = []
        add = found.append
        size = len(text)
        data = text.encode() if text.isascii() else None
        runs = self._runs
        # a run repeated in this text (a message names an address again) is looked up once;
        # this map lives for the call only, the cache itself keeps digests
        here: dict[str, tuple[_Found, ...]] = {}
        for group, (finder, recs, counts) in enumerate(self._groups):
            for start, end in finder.windows(text, data):
                stop = min(size, end + _LOOKAHEAD_MARGIN)
                lead = max(0, start - LOOKBEHIND_MARGIN)
                context = f"{group}\0{start - lead}\0{text[lead:stop]}"
                matches = here.get(context)
                if matches is None:
                    key = runs.digest(context)
                    matches = runs.get(key)
                    if matches is None:
                        matches = self._scan_run(recs, text, data, start=start, end=end,
                                                 stop=stop, counts=counts)
                        runs.put(key, matches)
                    here[context] = matches
                for s, e, score, priority, entity in matches:
                    add((start + s, start + e, score, priority, entity))
        return _resolve(found)

    def _scan_run(self, recs: list[_Recognizer], text: str, data: bytes | None, *,
                  start: int, end: int, stop: int, counts: bool) -> tuple[_Found, ...]:
        """The matches of every recognizer in one run, as offsets from the run's start;
        patterns may read up to `stop` for their lookaheads (`data`: the text's bytes, when
        it is ASCII)."""
        # `\d`: only 0-9 in ASCII text; not counted for a group that needs none (emails)
        digits = len(_DIGIT.findall(text, start, end)) if counts else 0
        found: list[_Found] = []
        for rec in recs:
            if digits < rec.min_digits:
                continue
            for k, (compiled, pattern_score, min_digits, needs, core) in enumerate(
                    rec.patterns):
                if digits < min_digits or (
                    needs and any(text.find(s, start, end) < 0 for s in needs)
                ) or (core is not None and core.search(text, start, end) is None):
                    continue  # a match lies inside the run: it would hold all of these
                linear = rec.linear[k]
                if linear is not None and data is not None:
                    for span in linear.spans_in(data, start, stop):
                        if span[0] >= end:
                            break
                        self._collect_span(rec, span, text, pattern_score, found)
                    continue
                if rec.reach is not None and end - start > sum(rec.reach[1:]):
                    self._scan_reach(rec, compiled, pattern_score, text,
                                     run=(start, end, stop), found=found)
                    continue
                for match in compiled.finditer(text, start, stop):
                    if match.start() >= end:
                        break  # belongs to the next run, scanned on its own
                    self._collect(rec, match, text, pattern_score, found)
        return tuple((s - start, e - start, score, priority, entity)
                     for s, e, score, priority, entity in found)

    def _scan_reach(self, rec: _Recognizer, compiled: Any, pattern_score: float, text: str,
                    *, run: tuple[int, int, int], found: list[_Found]) -> None:
        """A pattern's matches in a run (start, end, stop) longer than the hint's reach,
        looked for around each anchor: a match holds exactly one, so it lies between the
        anchors before and after it, and within the reach."""
        assert rec.reach is not None
        start, end, stop = run
        anchor, before, after = rec.reach
        previous, at = start - len(anchor), text.find(anchor, start, end)
        resume = start  # as `finditer` does, the next match starts after the last one
        while at >= 0:
            following = text.find(anchor, at + len(anchor), end)
            window_stop = min(stop, at + len(anchor) + after + _LOOKAHEAD_MARGIN,
                              following if following >= 0 else stop)
            window_start = max(at - before, previous + len(anchor), resume)
            for match in compiled.finditer(text, window_start, window_stop):
                if match.start() > at:
                    break
                if match.end() > at:  # holds this anchor
                    self._collect(rec, match, text, pattern_score, found)
                    resume = match.end()
            previous, at = at, following

    def _collect(
        self,
        rec: _Recognizer,
        match: Any,
        text: str,
        pattern_score: float,
        found: list[_Found],
    ) -> None:
        start, end = match.span()
        if not rec.group_fallback:
            self._collect_span(rec, (start, end), text, pattern_score, found)
            return
        # IbanRecognizer.__analyze_patterns: try the last group's end, then earlier ones.
        ends = [match.span(g)[1] for g in range(len(match.groups()), 0, -1)]
        for m_start, m_end in [(start, e if e > 0 else end) for e in ends]:
            score = self._score(rec, text[m_start:m_end], pattern_score)
            if score > 0:
                if score >= self.min_score:
                    found.append((m_start, m_end, score, rec.priority, rec.entity))
                return

    def _collect_span(self, rec: _Recognizer, span: tuple[int, int], text: str,
                      pattern_score: float, found: list[_Found]) -> None:
        score = self._score(rec, text[span[0]:span[1]], pattern_score)
        if score >= self.min_score and score > 0:
            found.append((span[0], span[1], score, rec.priority, rec.entity))

    def _score(self, rec: _Recognizer, value: str, pattern_score: float) -> float:
        """presidio's PatternRecognizer scoring: validation sets 1.0 or 0, invalidation 0."""
        if not value:
            return 0.0
        if not (rec.validates or rec.invalidates):
            return pattern_score
        digest = self._verdicts.digest(f"{rec.entity}\0{value}")
        verdict = self._verdicts.get(digest)
        if verdict is None:
            verdict = _KEEP
            if rec.validates:
                valid = rec.recognizer.validate_result(value)
                if valid is not None:
                    verdict = _VALID if valid else _DROP
            if rec.invalidates and rec.recognizer.invalidate_result(value):
                verdict = _DROP
            self._verdicts.put(digest, verdict)
        return pattern_score if verdict == _KEEP else 1.0 if verdict == _VALID else 0.0


def _resolve(found: list[_Found]) -> list[PiiMatch]:
    """presidio's per-recognizer `remove_duplicates` (drop a match that another match of the
    same entity contains with an equal or higher score), then across entities: a longer match
    wins an overlap, then a higher score, then entity priority."""
    if not found:
        return []
    by_start = sorted(set(found))
    if all(a[1] <= b[0] for a, b in pairwise(by_start)):  # disjoint: all kept
        return [_new_match(PiiMatch, (entity, start, end, score))
                for start, end, score, _, entity in by_start]
    ordered = sorted(by_start, key=lambda f: (f[4], f[0], f[0] - f[1], -f[2]))
    candidates: list[_Found] = []
    for _, same_entity in groupby(ordered, key=itemgetter(4)):
        active: list[_Found] = []
        for cand in same_entity:
            active = [a for a in active if a[1] >= cand[0]]
            if not any(a[0] <= cand[0] and cand[1] <= a[1] and cand[2] <= a[2] for a in active):
                candidates.append(cand)
                active.append(cand)
    candidates.sort(key=lambda f: (f[0] - f[1], -f[2], f[3], f[0]))
    starts: list[int] = []  # kept spans, disjoint and sorted, so ends are sorted too
    ends: list[int] = []
    kept: list[_Found] = []
    for cand in candidates:
        i = bisect_left(starts, cand[0])
        if (i == 0 or ends[i - 1] <= cand[0]) and (i == len(starts) or cand[1] <= starts[i]):
            starts.insert(i, cand[0])
            ends.insert(i, cand[1])
            kept.append(cand)
    kept.sort()
    return [_new_match(PiiMatch, (entity, start, end, score))
            for start, end, score, _, entity in kept]


def _linear(pattern: str) -> ByteRegex | None:
    """`pattern` (with presidio's flags: ignore case, multiline, dot-all) in RE2, or None
    when RE2 cannot run it."""
    try:
        return ByteRegex(f"(?ims){pattern}")
    except RegexError:
        return None
