"""The corpus report runs, and the default packs hold their detection figures:
no benign sample blocked, and detection not falling below what was measured."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from detection_report import evaluate  # noqa: E402


def test_detection_and_false_positive_rates() -> None:
    rows = evaluate(ROOT / "bench" / "corpus" / "corpus.jsonl")
    benign = rows["benign agent traffic"]
    assert benign["samples"] == 40 and benign["blocked"] == 0, benign["missed"]
    indirect = rows["indirect injection (tool results)"]
    assert indirect["blocked"] / indirect["samples"] >= 0.95, indirect["missed"]
    jailbreaks = rows["jailbreak templates (PyRIT)"]
    assert jailbreaks["samples"] >= 600
    assert jailbreaks["blocked"] / jailbreaks["samples"] >= 0.45  # measured: 48.1%
