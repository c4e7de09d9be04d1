"""Counters and switches that outlive one request: rates, budgets, loops, kill switches.

Behind a small interface so a shared store (Redis, say) can replace the in-memory one
when lictor runs as several replicas, without touching rules or the engine.
"""

from __future__ import annotations

import threading
from typing import Protocol


class StateStore(Protocol):
    def add(self, key: str, amount: float, window_s: float, now: float) -> tuple[float, float]:
        """Add to the counter of the fixed window holding `now`; return (total, seconds
        until that window ends)."""

    def peek(self, key: str, window_s: float, now: float) -> tuple[float, float]:
        """The counter's current window total and seconds left, without adding."""

    def set_switch(self, key: str, on: bool) -> None: ...

    def switch(self, key: str) -> bool: ...


class MemoryStateStore:
    """Fixed-window counters and switches in this process; expired windows are reused."""

    MAX_KEYS = 200_000  # bounded: an attacker minting session ids cannot grow it forever

    def __init__(self) -> None:
        self._counters: dict[str, tuple[float, float]] = {}  # key -> (window start, total)
        self._switches: set[str] = set()
        self._lock = threading.Lock()

    def _window(self, key: str, window_s: float, now: float) -> tuple[float, float]:
        start = now - (now % window_s)
        found = self._counters.get(key)
        if found is None or found[0] != start:
            return start, 0.0
        return found

    def add(self, key: str, amount: float, window_s: float, now: float) -> tuple[float, float]:
        with self._lock:
            start, total = self._window(key, window_s, now)
            total += amount
            if len(self._counters) >= self.MAX_KEYS and key not in self._counters:
                self._evict(now)
            self._counters[key] = (start, total)
            return total, start + window_s - now

    def peek(self, key: str, window_s: float, now: float) -> tuple[float, float]:
        with self._lock:
            start, total = self._window(key, window_s, now)
            return total, start + window_s - now

    def _evict(self, now: float) -> None:
        """Drop windows that started more than a day ago, else the oldest half."""
        stale = [k for k, (start, _) in self._counters.items() if now - start > 86_400]
        if not stale:
            stale = sorted(self._counters, key=lambda k: self._counters[k][0])
            stale = stale[: len(stale) // 2]
        for k in stale:
            del self._counters[k]

    def set_switch(self, key: str, on: bool) -> None:
        with self._lock:
            if on:
                self._switches.add(key)
            else:
                self._switches.discard(key)

    def switch(self, key: str) -> bool:
        return key in self._switches
