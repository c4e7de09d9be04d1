"""The latency benchmark runs end to end (a few requests), so it cannot silently rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(tmp_path: Path, script: str, *args: str,
              timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`bench/<script> ARGS --json FILE`, run from bench/: its result, and FILE."""
    out = tmp_path / f"{Path(script).stem}.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT / "bench",
    )
    return result, out


def test_gateway_latency_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(
        tmp_path, "gateway_latency.py", "--requests", "20", "--warmup", "2", "--telemetry",
        "--baseline", "HEAD", "--floor")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for name in ("direct", "bare", "lictor", "floor"):
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p99_ms"]
    assert figures["cpu_us_per_request"]["floor"] > 0 and "floor_added" in figures
    assert "lictor_over_bare" in figures and "lictor_added" in figures
    assert figures["lictor_otel"]["p50_ms"] > 0 and "otel_over_lictor" in figures
    assert "lictor_added" in result.stdout
    assert figures["cpu_us_per_request"]["lictor"] > figures["cpu_us_per_request"]["bare"] >= 0
    assert figures["baseline"]["p50_ms"] > 0 and "lictor_vs_baseline" in figures
    assert set(figures["protocols"]) == {"chat", "responses", "messages", "embeddings"}
    for protocol in figures["protocols"].values():
        assert 0 < protocol["lictor"]["p50_ms"] <= protocol["lictor"]["p99_ms"]


def test_gateway_phases_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(tmp_path, "gateway_phases.py", "--requests", "20", "--warmup", "2")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["requests"] == 20
    phases = figures["phases"]
    for label in ("engine: evaluate the request", "audit: append, one commit",
                  "upstream: the HTTP/1.1 client's post", "answer: write it"):
        assert phases[label]["calls_per_request"] == 1
        assert phases[label]["cpu_us"] > 0
    whole = phases["gateway: exchange (all below)"]["wall_us"]
    assert phases["engine: evaluate the request"]["wall_us"] < whole


def test_egress_latency_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(
        tmp_path, "egress_latency.py", "--requests", "10", "--tls", "--warmup", "2",
        "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for name in ("direct", "gateway", "egress_model", "egress_http"):
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p99_ms"]
        assert figures[name]["req_per_s"] > 0
    assert "egress_model_added" in result.stdout


def test_authorization_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(tmp_path, "authorization.py", "--actions", "300", timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for shape in ("repeat", "new_amounts", "offer", "cold", "cold_turns", "cold_cedar",
                  "cold_whole", "reparse"):
        assert 0 < figures[shape]["p50_us"] <= figures[shape]["p99_us"]
    # a real Cedar call costs more than a cached decision
    assert figures["cold_cedar"]["p50_us"] > figures["new_amounts"]["p50_us"]
    assert set(figures["vs_compiled"]) == {"cold_cedar", "cold_whole"}


def test_mcp_latency_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(tmp_path, "mcp_latency.py", "--requests", "10", "--warmup", "2")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for name in ("sse_direct", "sse_lictor", "json_direct", "json_lictor"):
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p99_ms"]
    assert "json_added" in result.stdout


def test_audit_append_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(
        tmp_path, "audit_append.py", "--seconds", "0.3", "--samples", "100", timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for mode in ("normal", "full"):
        assert figures[mode]["records_per_s"] > 0
        assert 0 < figures[mode]["request_p50_us"] <= figures[mode]["request_p99_us"]


def test_audit_evidence_bench_runs(tmp_path: Path) -> None:
    result, out = run_bench(
        tmp_path, "audit_evidence.py", "--records", "3000", "--rounds", "2", "--commits", "200")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for name in ("chain_only", "with_merkle"):
        assert figures["appends"][name]["records_per_s"] > 0
    assert figures["evidence"]["export_records"] == 429  # agent-3: 1 record in 7
    assert 0 < figures["evidence"]["checkpoint_ms"] < 1000


def test_crash_loop_bench_runs(tmp_path: Path) -> None:
    """Two rounds of kill -9 under load (the long run is `bench/crash_loop.py --rounds 20`)."""
    result, out = run_bench(tmp_path, "crash_loop.py", "--rounds", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["kills"] == 2 and figures["failed_rounds"] == 0
    assert figures["answered"] > 0 and figures["records"] >= figures["answered"]


def test_soak_bench_runs(tmp_path: Path) -> None:
    """A short soak (the long run is `bench/soak.py --requests 200000`)."""
    result, out = run_bench(
        tmp_path, "soak.py", "--requests", "600", "--concurrency", "8", timeout=240)
    figures = json.loads(out.read_text())
    assert figures["audit_verifies"] and figures["unexpected"] == {}, result.stdout
    assert figures["complete_record_sets"] == figures["requests"] == 600
    assert set(figures["rss_mb"]) == {"start", "after_warmup", "end"}


def test_compare_quick_runs(tmp_path: Path) -> None:
    """`bench/compare --quick`: direct, bare and lictor, three short cells, real processes."""
    result, out = run_bench(tmp_path, "compare.py", "--quick", timeout=90)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert set(figures["cells"]) == {"direct", "bare", "lictor"}
    for cells in figures["cells"].values():
        assert set(cells) == {"plain_1k_c1", "plain_1k_c32", "stream_1k_c1"}
        for cell in cells.values():
            assert cell["requests"] > 0 and cell["errors"] == 0
            assert 0 < cell["p50_ms"] <= cell["p99_ms"]
    streamed = figures["cells"]["lictor"]["stream_1k_c1"]
    assert 0 < streamed["ttfb_p50_ms"] <= streamed["p50_ms"]
    # the upstream pauses 200 ms after its first chunk: every proxy relays it before that
    for probe in figures["buffering_probe"].values():
        assert not probe["buffered"] and probe["total_ms"] >= 200
    assert figures["ratios"]["plain_1k_c32"]["lictor_over_bare"] > 0
    assert figures["rss_mb"]["lictor"] > 0 and figures["systems"]["lictor"]["ready_s"] > 0
    assert "targets:" in result.stdout


def test_check_time_bench_runs_with_a_baseline(tmp_path: Path) -> None:
    result, out = run_bench(
        tmp_path, "check_time.py", "--requests", "50", "--gc", "--baseline", "HEAD", timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for shape in ("2KB", "32KB", "128KB+1"):
        assert 0 < figures[shape]["p50_us"] <= figures[shape]["p99_us"]
        assert 0 < figures["baseline"][shape]["p50_us"] <= figures["baseline"][shape]["p99_us"]
    assert figures["baseline"]["rev"] == "HEAD"
    assert figures["gc"] and all(g["collections"] > 0 for g in figures["gc"].values())
    assert "p50 ratio" in result.stdout
