"""A bounded cache keyed by a keyed BLAKE2 digest of a text, so it never holds the text.

The PII scanner remembers verdicts on values that are personal data (a phone number, an
address's host, a run of text around them); memory dumps and heap inspection must not find
them there. Emptied at once when full: cheaper than an eviction order, and refilled by the
next requests.
"""

from __future__ import annotations

import hashlib
import os
from typing import Generic, TypeVar

from lictor.enforcement import young_objects

V = TypeVar("V")


class DigestCache(Generic[V]):
    __slots__ = ("_data", "_key", "size")

    def __init__(self, size: int = 4096) -> None:
        self._key = os.urandom(16)
        self._data: dict[bytes, V] = {}
        self.size = size

    def digest(self, text: str) -> bytes:
        """The key `text` is kept under."""
        return hashlib.blake2b(text.encode(), key=self._key, digest_size=16).digest()

    def get(self, digest: bytes) -> V | None:
        return self._data.get(digest)

    def put(self, digest: bytes, value: V) -> None:
        if len(self._data) >= self.size:
            self._data.clear()
        self._data[digest] = value
        young_objects.kept()
