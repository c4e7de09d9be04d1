"""Rule patterns are RE2 syntax: one place that compiles them, for the loader and scanner.

RE2 runs in linear time, so no rule pattern can be made to backtrack catastrophically by
hostile input; the price is no lookarounds and no backreferences.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the rule author, not to stderr

RegexError = re2.error


def compile_options() -> Any:
    """lictor's RE2 options (for RE2 sets, which take options, not a compiled pattern)."""
    return _OPTIONS


def compile_re2(pattern: str) -> Any:
    """Compile with lictor's RE2 options; raises `RegexError` with RE2's reason."""
    return re2.compile(pattern, _OPTIONS)


def explain(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else str(exc)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    hint = ""
    if "(?<" in str(reason) or "(?=" in str(reason) or "(?!" in str(reason):
        hint = (
            " (lookarounds are not supported: patterns use RE2 syntax, which runs in linear time)"
        )
    elif "\\1" in str(reason) or "escape sequence" in str(reason):
        hint = " (backreferences are not supported in RE2 syntax)"
    return f"{reason}{hint}"
