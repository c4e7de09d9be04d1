"""Detection and false-positive rates of the default packs, per corpus category.

Each sample is one message with its trust label (a user prompt, or a tool result), judged
by the real engine. "blocked" is what stops a request; "flagged" is recorded but passes.
For attacks, the blocked share is the detection rate; for benign traffic, it is the
false-positive rate.

    python bench/detection_report.py [--corpus bench/corpus/corpus.jsonl] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from measure import write_json

from lictor.enforcement.engine import Engine
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Direction,
    Principal,
    Segment,
    Trust,
    Verdict,
)
from lictor.rules.loader import default_paths, load_policy

HERE = Path(__file__).resolve().parent


def evaluate(corpus: Path) -> dict[str, dict[str, Any]]:
    agent = Principal("report-agent")
    engine = Engine(load_policy(default_paths()), [agent])
    rows: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"label": "", "samples": 0, "blocked": 0, "flagged": 0, "missed": []})
    for line in corpus.read_text("utf-8").split("\n"):  # not splitlines(): U+2028 is text
        if not line:
            continue
        sample = json.loads(line)
        segments = [Segment(sample["text"], Trust(sample["trust"]))]
        if sample["trust"] != "user":  # a tool result answers some user request
            segments.insert(0, Segment("Please summarize this for me.", Trust.USER))
        action = Action(ActionKind.MODEL_REQUEST, Direction.REQUEST, "report",
                        segments=segments, model="report")
        verdict = engine.evaluate_request(agent, action).decision.verdict
        row = rows[sample["category"]]
        row["label"] = sample["label"]
        row["samples"] += 1
        row["blocked"] += verdict is Verdict.BLOCK
        row["flagged"] += verdict is Verdict.FLAG
        if (verdict is Verdict.BLOCK) != (sample["label"] == "attack"):
            row["missed"].append(sample["id"])
    return dict(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus" / "corpus.jsonl")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = evaluate(args.corpus)
    print(f"{'category':36} {'kind':7} {'samples':>7} {'blocked':>8} {'flagged':>8} "
          f"{'rate':>8}")
    for name, row in rows.items():
        rate = row["blocked"] / row["samples"]
        kind = "detect" if row["label"] == "attack" else "FP"
        row["rate"] = round(rate, 4)
        print(f"{name:36} {kind:7} {row['samples']:7d} {row['blocked']:8d} "
              f"{row['flagged']:8d} {rate:8.1%}")
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
