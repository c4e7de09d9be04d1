"""The PNG chart of a `bench/compare` run (run with bench/.venv-litellm's python: matplotlib).

    python bench/compare_chart.py bench/results/compare.json bench/results/compare.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"direct": "#999999", "bare": "#4c72b0", "lictor": "#55a868",
           "lictor_full": "#8fd19e", "litellm": "#c44e52"}


def main(result_path: str, png_path: str) -> None:
    result = json.loads(Path(result_path).read_text())
    cells = result["cells"]
    names = list(cells)
    keys = list(cells[names[0]])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(keys))]
        top.bar(xs, [cells[name][c]["rps"] for c in keys], width, label=name,
                color=COLOURS.get(name))
        bottom.bar(xs, [cells[name][c]["p50_ms"] or 0 for c in keys], width, label=name,
                   color=COLOURS.get(name))
    for ax, label in ((top, "requests/s (log)"), (bottom, "p50 latency, ms (log)")):
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([k.replace("_", "\n") for k in keys], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    top.legend(ncol=len(names), fontsize=8)
    top.set_title(f"bench/compare: {result['machine']}, {result['date']}, "
                  f"{result['rounds']} x {result['seconds_per_cell']} s (c=1) or "
                  f"{2 * result['seconds_per_cell']} s per cell", fontsize=10)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
