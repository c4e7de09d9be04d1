"""`bench/compare`'s figures: latency added over direct, the ratios, the targets, the table."""

from __future__ import annotations

from typing import Any

REF_CELL = "plain_1k_c1"  # added latency at concurrency 1
RATE_CELL = "plain_1k_c32"  # throughput targets


def _get(cells: dict[str, dict[str, Any]], system: str, cell: str, what: str) -> float | None:
    value = cells.get(system, {}).get(cell, {}).get(what)
    return float(value) if value is not None else None


def derive(result: dict[str, Any]) -> None:
    """Add to `result`: per cell the latency each system adds over direct, the throughput
    ratios lictor/bare and lictor/LiteLLM, and the issue's targets with their verdicts."""
    cells: dict[str, dict[str, Any]] = result["cells"]
    for system, by_cell in cells.items():
        for cell, fig in by_cell.items():
            for q in ("p50_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms"):
                base = _get(cells, "direct", cell, q)
                if system != "direct" and fig.get(q) is not None and base is not None:
                    fig[f"added_{q}"] = round(fig[q] - base, 3)
    ratios: dict[str, dict[str, float]] = {}
    for cell in cells.get("lictor", {}):
        lictor_rps = _get(cells, "lictor", cell, "rps") or 0.0
        for other in ("bare", "litellm", "lictor_before"):
            rps = _get(cells, other, cell, "rps")
            if rps:
                ratios.setdefault(cell, {})[f"lictor_over_{other}"] = round(lictor_rps / rps, 2)
    result["ratios"] = ratios

    def check(name: str, value: float | None, limit: float, above: bool) -> dict[str, Any]:
        ok = None if value is None else (value >= limit if above else value < limit)
        return {"target": name, "value": value, "limit": limit, "holds": ok}

    lictor = cells.get("lictor", {})
    stream_cell = "stream_1k_c1"
    result["targets"] = [
        check("added p50 at c=1, ms", lictor.get(REF_CELL, {}).get("added_p50_ms"), 0.5, False),
        check("added p99 at c=1, ms", lictor.get(REF_CELL, {}).get("added_p99_ms"), 2.0, False),
        check("c=32 1 KB throughput, x LiteLLM",
              ratios.get(RATE_CELL, {}).get("lictor_over_litellm"), 25, True),
        check("c=32 1 KB throughput, x bare proxy",
              ratios.get(RATE_CELL, {}).get("lictor_over_bare"), 0.5, True),
        check("streaming TTFB added at c=1, ms",
              lictor.get(stream_cell, {}).get("added_ttfb_p50_ms"), 1.0, False),
        check("RSS after the run, MB", result["rss_mb"].get("lictor"), 150, False),
        check("ready, s", result["systems"].get("lictor", {}).get("ready_s"), 1.0, False),
        check("ready, CPU s", result["systems"].get("lictor", {}).get("ready_cpu_s"), 1.0,
              False),
    ]
    probe = result["buffering_probe"].get("lictor", {})
    result["targets"].append({"target": "stream relayed, not buffered", "value": probe,
                              "limit": None, "holds": not probe.get("buffered", True)})


def _ms(value: float | None) -> str:
    return f"{'-' if value is None else f'{value:.2f}':>8}"


def report(result: dict[str, Any]) -> None:
    """Derive the figures, then print the table and the targets."""
    derive(result)
    cells: dict[str, dict[str, Any]] = result["cells"]
    print(f"\n{result['machine']}, {result['date']}, {result['rounds']} x "
          f"{result['seconds_per_cell']} s (c=1) or {2 * result['seconds_per_cell']} s "
          "per cell and system, "
          f"load from {result['loader']}")
    head = (f"{'cell':16} {'system':13} {'answers':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'+p50 ms':>8} {'+p99 ms':>8} {'ttfb50':>8} {'err':>4}")
    print(head)
    print("-" * len(head))
    for cell in next(iter(cells.values())):
        for system, by_cell in cells.items():
            f = by_cell.get(cell)
            if f is None:
                continue
            numbers = " ".join(_ms(f.get(k)) for k in (
                "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "ttfb_p50_ms"))
            print(f"{cell:16} {system:13} {f['requests']:7} {f['rps']:8.0f} {numbers} "
                  f"{f['errors']:4}")
    print("\nready (wall s, CPU s) / RSS MB after the run / buffering probe "
          "(the upstream pauses 200 ms):")
    for name, info in result["systems"].items():
        probe = result["buffering_probe"].get(name, {})
        print(f"  {name:13} {info['ready_s']:6.2f} s {info['ready_cpu_s']:6.2f} s "
              f"{result['rss_mb'].get(name, 0):7.1f} MB  "
              f"first byte {probe.get('ttfb_ms')} ms of {probe.get('total_ms')} ms")
    print("\nratios (throughput):")
    for cell, r in result["ratios"].items():
        print(f"  {cell:16} " + "  ".join(f"{k} {v}x" for k, v in r.items()))
    print("\ntargets:")
    for t in result["targets"]:
        verdict = {True: "holds", False: "MISSED", None: "not measured"}[t["holds"]]
        print(f"  {t['target']:38} {t['value']!s:>10} (limit {t['limit']}): {verdict}")
    print(f"\nLiteLLM presidio guardrail: {result['litellm_presidio_guardrail']}")
    print(f"wall time {result['wall_s']} s")
