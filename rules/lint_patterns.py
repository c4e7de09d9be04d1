"""Rule patterns that cannot do their job, found with RE2 itself.

A pattern that matches the empty string fires on every text. A pattern that needs a
character the scanned text never holds can never fire: lictor scans normalized text
(whitespace runs become one space, invisible characters are removed, NFKC and homoglyphs
are folded), so a `\\n` or a zero-width space in a pattern is never there to be matched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from lictor.rules.regex_syntax import compile_re2

# What one piece of text looks like once scanned (lictor.enforcement.normalize's main
# view); passed in, so the rule language does not import the engine.
TextView = Callable[[str], str]

EMPTY_PROBES = ("", "hello", "Hello, world! 42")
NO_MATCH = r"[^\x00-\x{10FFFF}]"  # a class no character is in
_QUANTIFIER = re.compile(r"\{\d+(?:,\d*)?\}")
_PRINTABLE_ASCII = "".join(map(chr, range(0x20, 0x7F)))


def _scanner_form(pattern: str, case_sensitive: bool) -> str:
    """The pattern as the scanner compiles it (case-insensitive unless told otherwise)."""
    return pattern if case_sensitive else f"(?i:{pattern})"


def empty_match_probe(pattern: str, case_sensitive: bool) -> str | None:
    """A short text in which the pattern matches the empty string, or None."""
    regex = compile_re2(_scanner_form(pattern, case_sensitive))
    for probe in EMPTY_PROBES:
        if any(m.start() == m.end() for m in regex.finditer(probe)):
            return probe
    return None


def _escape_end(p: str, i: int) -> int:
    """End of the escape starting at p[i] == '\\'."""
    kind = p[i + 1]
    if kind in "xpP":
        if p[i + 2] == "{":
            return p.index("}", i) + 1
        return i + (4 if kind == "x" else 3)
    if kind in "01234567":
        j = i + 1
        while j < min(i + 4, len(p)) and p[j] in "01234567":
            j += 1
        return j
    return i + 2


def _class_end(p: str, i: int) -> int:
    """End of the character class starting at p[i] == '['."""
    j = i + 1
    if p[j] == "^":
        j += 1
    if p[j] == "]":  # a leading ']' is a literal
        j += 1
    while p[j] != "]":
        if p[j] == "\\":
            j = _escape_end(p, j)
        elif p.startswith("[:", j):
            j = p.index(":]", j) + 2
        else:
            j += 1
    return j + 1


def split_atoms(p: str) -> list[tuple[str, bool]] | None:
    """The pattern as pieces, each flagged True when it consumes one character (a literal,
    an escape, a class); None for syntax this reader does not follow (`\\Q...\\E`)."""
    out: list[tuple[str, bool]] = []
    i = 0
    try:
        while i < len(p):
            c = p[i]
            if c == "\\":
                if p[i + 1] == "Q":
                    return None
                end = _escape_end(p, i)
                out.append((p[i:end], p[i + 1] not in "AzbB"))
            elif c == "[":
                end = _class_end(p, i)
                out.append((p[i:end], True))
            elif c == "(" and p.startswith("(?", i):
                end = min(k for k in (p.find(":", i), p.find(")", i)) if k >= 0) + 1
                out.append((p[i:end], False))
            elif c == "{" and (m := _QUANTIFIER.match(p, i)):
                end = m.end()
                out.append((p[i:end], False))
            else:
                end = i + 1
                out.append((c, c not in "()|*+?^$.{"))
            i = end
    except (IndexError, ValueError):
        return None
    return out


@cache
def _all_characters() -> str:
    """Every code point RE2 can see (surrogates excluded), to find what a class matches."""
    return "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def _survives(char: str, view: TextView) -> bool:
    # Context matters: "a\u0301" composes under NFKC while " \u0301" does not.
    return any(char in view(context) for context in (f"a{char}b", f"a {char} b"))


def _can_be_scanned(atom: str, fold_case: bool, view: TextView) -> bool:
    """Whether some character the atom matches can appear in scanned text."""
    regex = compile_re2(_scanner_form(atom, not fold_case))
    if regex.search(_PRINTABLE_ASCII):  # printable ASCII always survives normalization
        return True
    return any(_survives(m.group(0), view) for m in regex.finditer(_all_characters()))


def _never_matches(regex: Any) -> bool:
    # RE2 compiles a regex that no text can match into a single `fail` instruction.
    return bool(regex.programsize <= 1)


def pattern_problems(pattern: str, case_sensitive: bool, view: TextView | None) -> list[str]:
    """Why the pattern cannot do its job (empty: it can), one message each."""
    if _never_matches(compile_re2(_scanner_form(pattern, case_sensitive))):
        return ["can never match anything"]
    probe = empty_match_probe(pattern, case_sensitive)
    if probe is not None:
        where = "even in an empty text" if probe == "" else f"it does in {probe!r}"
        return [f"matches the empty string ({where}), so the rule fires on every text"]
    atoms = split_atoms(pattern) if view is not None else None
    if view is None or atoms is None:
        return []
    fold_case = not case_sensitive or "(?i" in pattern
    dead = [a for a, consumes in atoms if consumes and not _can_be_scanned(a, fold_case, view)]
    if not dead:
        return []
    rebuilt = "".join(NO_MATCH if consumes and a in dead else a for a, consumes in atoms)
    names = ", ".join(dict.fromkeys(f"`{a}`" for a in dead))
    why = (f"scanned text never holds {names} (it is normalized: whitespace runs become "
           "one space, invisible characters are removed, NFKC and homoglyphs are folded)")
    if _never_matches(compile_re2(_scanner_form(rebuilt, case_sensitive))):
        return [f"can never match: {why}"]
    return [f"has parts that can never match: {why}"]
