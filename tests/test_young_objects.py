"""The caches' new entries do not pile up in the young generation (CPython counts each
eviction against them, so at steady state it would never collect it on its own)."""

from __future__ import annotations

import gc

import pytest

from lictor.adapters import openai_chat
from lictor.enforcement import young_objects
from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.loader import default_paths, load_policy

AGENT = Principal("agent", "team")


def _largest_young_generation(engine: Engine, requests: int) -> int:
    """Judge `requests` conversations of new 8 KB text with the engine's caches full; the
    most objects the young generation held after any of them."""
    largest = 0
    for i in range(requests):
        messages = [{"role": "user" if k % 2 else "assistant",
                     "content": f"[{i}.{k}] Order {i * 100 + k} left the warehouse; write to "
                                f"customer{i}x{k}@example.com or call +44 20 7946 0{k:03d}. " * 4}
                    for k in range(24)]
        engine.evaluate_request(AGENT, openai_chat.parse_request(
            {"model": "m", "messages": messages}))
        largest = max(largest, len(gc.get_objects(generation=0)))
    return largest


def _small_cached_engine() -> Engine:
    engine = Engine(load_policy(default_paths()), [AGENT])
    for cache in (engine._pii_cache, engine._pattern_cache, engine._history,
                  engine._resume):
        cache.max_entries = 300  # full within a few requests: every new entry evicts one
    gc.collect()
    return engine


def test_full_caches_keep_the_young_generation_small(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _largest_young_generation(_small_cached_engine(), 150) < 1_000
    # the same traffic without the pace: the young generation grows unexamined
    monkeypatch.setattr(young_objects, "collect_if_due", lambda: None)
    assert _largest_young_generation(_small_cached_engine(), 150) > 3_000


def test_a_disabled_collector_stays_off() -> None:
    gc.disable()
    try:
        collections = gc.get_stats()[0]["collections"]
        young_objects.kept(young_objects.BOUND)
        young_objects.collect_if_due()
        assert gc.get_stats()[0]["collections"] == collections
    finally:
        gc.enable()
