"""normalize's fast paths give the same views as the reference ones."""

from __future__ import annotations

import random

from lictor.enforcement.normalize import _LEET, normalize


def test_leetspeak_view_of_ascii_text_is_the_str_translation() -> None:
    """ASCII text takes `bytes.translate`; it must equal `str.translate` with `_LEET`, and
    non-ASCII text (the `str` path) keeps working."""
    rnd = random.Random(11)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 @$!| .,-_"
    for _ in range(2000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))
        views = dict(normalize(text).views)
        if "leetspeak" in views:
            assert views["leetspeak"] == views["text"].translate(_LEET), text
    unicode_views = dict(normalize("ignöre 4ll pr3vious").views)
    assert unicode_views["leetspeak"] == unicode_views["text"].translate(_LEET)
    assert dict(normalize("ign0re all").views)["leetspeak"] == "ignore all"
