"""Small helpers the benchmarks share: free ports, percentiles, writing results."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    """The value at quantile `q` (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_json(path: Path | None, data: Any) -> None:
    """Write `data` to `path` (its folder made if need be); nothing when no path was asked."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))


def run_header() -> dict[str, Any]:
    """Where and when a benchmark ran, for its JSON result."""
    return {"machine": f"{platform.node()}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M")}


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    """A lictor config file only its owner can read: `lictor serve` refuses keys in the
    clear in a file others may read."""
    path.write_text(json.dumps(settings))
    path.chmod(0o600)
    return path


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60,
               log: Path | None = None) -> float:
    """Seconds until `port` accepts connections (the process's start-up to ready); `log`:
    where the process writes its errors, quoted if it exits first."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-2000:] if log is not None else ""
            raise RuntimeError(f"port {port}: process exited with {proc.returncode}\n{said}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def serve_lictor(port: int, *args: str) -> subprocess.Popen[bytes]:
    """`lictor serve --port PORT ARGS...` in its own process, returned once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lictor.proxy.cli", "serve", "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    try:
        wait_ready(port, proc)
    except RuntimeError:
        proc.kill()
        raise
    return proc

