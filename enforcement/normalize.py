"""Text normalization before pattern scanning: one pass per segment.

NFKC folds full-width and compatibility forms; invisible, bidi-control and Unicode tag
characters are removed (and reported) so they cannot split a phrase a rule looks for.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width and joiner characters, bidi controls, word joiner and friends, BOM, the
# Unicode tag block (U+E0000..U+E007F) and variation selectors.
_INVISIBLE = re.compile(
    "[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\ufe00-\ufe0f\U000e0000-\U000e007f]"
)


def normalize(text: str) -> tuple[str, bool]:
    """Return (normalized text, whether invisible characters were removed)."""
    if text.isascii():  # the common case: nothing for NFKC or the invisible set to do
        return text, False
    cleaned, removed = _INVISIBLE.subn("", text)
    return unicodedata.normalize("NFKC", cleaned), removed > 0
