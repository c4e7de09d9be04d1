"""Placeholder restoration for streamed responses, where a placeholder may straddle chunks.

Only a trailing fragment that can still grow into a placeholder is held back, so ordinary
text (including a lone `<` or markup) flows through without waiting for the end of the stream.
"""

from __future__ import annotations

import re

from lictor.enforcement.pii.placeholder_vault import PlaceholderVault

# Proper prefixes of the placeholder grammar `<[A-Z][A-Z_]*_\d+>`.
_PREFIX_RE = re.compile(r"<(?:[A-Z][A-Z_]*(?:_\d+)?)?")
# Longer than any placeholder a vault hands out (labels are at most 12 characters).
MAX_FRAGMENT = 40


class StreamRestorer:
    """Feeds chunks of one stream through `vault.restore`.

    Any split of a text into chunks yields, over all `feed` results and `flush`, exactly
    `vault.restore(text)`: a placeholder contains no `<` after its first character, so cutting
    just before the last `<` never splits one.
    """

    __slots__ = ("_pending", "_vault")

    def __init__(self, vault: PlaceholderVault) -> None:
        self._vault = vault
        self._pending = ""

    def feed(self, chunk: str) -> str:
        """Restored text that can be released now."""
        text = self._pending + chunk if self._pending else chunk
        cut = text.rfind("<")
        if cut >= 0 and len(text) - cut <= MAX_FRAGMENT and _PREFIX_RE.fullmatch(text, cut):
            self._pending = text[cut:]
            text = text[:cut]
        else:
            self._pending = ""
        return self._vault.restore(text)

    def flush(self) -> str:
        """Everything still held, at the end of the stream."""
        text, self._pending = self._pending, ""
        return self._vault.restore(text)
