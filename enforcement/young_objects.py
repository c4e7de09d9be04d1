"""Collects the young generation on a pace set by what the caches keep.

CPython 3.11 decides to collect the young generation when allocations minus deallocations
of container objects pass 700. A full cache evicts an old entry for every new one, so that
count stays near zero while the new entries pile up in the young generation unexamined:
44,000 objects were seen there at once, then one collection took 20-37 ms
(`bench/check_time.py --gc`). The caches count the entries they keep; once `BOUND` have
been kept the engine collects the young generation after its check, a few hundred
objects at a time.
"""

from __future__ import annotations

import gc

BOUND = 32  # cache entries kept between collections (a few objects each)

_kept = 0


def kept(entries: int = 1) -> None:
    """A cache kept `entries` new entries (they stay in the young generation)."""
    global _kept  # noqa: PLW0603 - one process-wide pace, like the collector itself
    _kept += entries


def collect_if_due() -> None:
    """Collect the young generation if the caches kept `BOUND` entries since the last time."""
    global _kept  # noqa: PLW0603
    if _kept >= BOUND:
        _kept = 0
        if gc.isenabled():  # a process that switched the collector off keeps it off
            gc.collect(0)
