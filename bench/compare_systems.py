"""The systems `bench/compare` measures, each in its own process: how to start one, when it is
ready, and how much memory it holds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import write_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_LOCK = ROOT / "requirements" / "bench-litellm.lock"
LICTOR_KEY = "sk-bench-agent"
LITELLM_KEY = "sk-bench-litellm-master"
MODELS = ("bench-gpt", "bench-slow")  # bench-slow: the mock pauses after the first chunk
READY_BODY = json.dumps({"model": "bench-gpt",
                         "messages": [{"role": "user", "content": "ready?"}]}).encode()


@dataclass(slots=True)
class System:
    """One running target: where to post chat completions, with which key."""

    name: str
    url: str
    key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    ready_s: float = 0.0
    ready_cpu_s: float = 0.0  # CPU the process used to get ready: less noisy than wall time
    notes: list[str] = field(default_factory=list)

    def rss_mb(self) -> float:
        """Resident memory of the process and its children, in MB (0 for the upstream)."""
        if self.proc is None:
            return 0.0
        return sum(_rss_kb(pid) for pid in _tree(self.proc.pid)) / 1024

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(system: System, timeout: float, started: float) -> None:
    """Block until a chat completion through `system` answers 200; record the seconds taken."""
    headers = {"Content-Type": "application/json"}
    if system.key:
        headers["Authorization"] = f"Bearer {system.key}"
    while time.monotonic() - started < timeout:
        if system.proc is not None and system.proc.poll() is not None:
            raise RuntimeError(f"{system.name} exited with {system.proc.returncode}")
        try:
            req = urllib.request.Request(system.url, READY_BODY, headers)
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    system.ready_s = time.monotonic() - started
                    if system.proc is not None:
                        system.ready_cpu_s = sum(_cpu_s(p) for p in _tree(system.proc.pid))
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{system.name} was not ready after {timeout} s")


def start(name: str, argv: list[str], port: int, *, key: str = "", timeout: float = 60,
          env: dict[str, str] | None = None, log: Path | None = None) -> System:
    """Start `argv` and wait until it answers a chat completion on `port`."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    system = System(name, f"http://127.0.0.1:{port}/v1/chat/completions", key, proc)
    try:
        wait_ready(system, timeout, started)
    except RuntimeError:
        system.stop()
        if log is not None:
            tail = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- {name}'s log ({log}):", *tail, sep="\n", file=sys.stderr)
        raise
    return system


def mock_upstream(port: int) -> System:
    return start("upstream", [sys.executable, str(HERE / "mock_upstream.py"), "--port",
                              str(port)], port)


def bare_proxy(port: int, upstream: str) -> System:
    return start("bare", [sys.executable, str(HERE / "bare_proxy.py"), "--port", str(port),
                          "--upstream", upstream], port)


def lictor(name: str, port: int, upstream: str, tmp: Path, *, synchronous: str,
           source: Path | None = None) -> System:
    """`lictor serve` with the default packs and the audit log on (`synchronous` as given);
    from `source` (a checkout's root) instead of the installed lictor when given."""
    env = source_env(source, tmp / f"{name}-view") if source is not None else {}
    config = tmp / f"{name}.yaml"
    write_config(config, {
        "data_dir": str(tmp / f"{name}-var"),
        "agents": [{"id": "bench-agent", "team": "bench", "key": LICTOR_KEY}],
        "models": [{"name": m, "backend": "passthrough", "base_url": upstream} for m in MODELS],
        "audit": {"synchronous": synchronous},
    })
    return start(name, [sys.executable, "-m", "lictor.proxy.cli", "serve", "--config",
                        str(config), "--port", str(port)], port, key=LICTOR_KEY,
                 env=env, log=tmp / f"{name}.log")


def source_env(source: Path, view_dir: Path) -> dict[str, str]:
    """Environment that makes `python -m lictor...` run the checkout at `source`: lictor.<folder>
    -> <source>/<folder>, ahead of the editable install (same interpreter and packages)."""
    view = view_dir / "lictor"
    view.mkdir(parents=True)
    for folder in ("proxy", "rules", "enforcement", "audit", "adapters"):
        (view / folder).symlink_to(source / folder)
    return {"PYTHONPATH": str(view_dir)}


def checkout(rev: str, tmp: Path) -> Path:
    """This repository's tree at `rev` (git archive), to run an earlier lictor side by side."""
    dest = tmp / f"src-{rev}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    # byte-compiled now, as the installed lictor is, so its start-up is not charged for it
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest)], check=True)
    return dest


def ensure_litellm_venv() -> Path:
    """Create bench/.venv-litellm from the hash-pinned lock (again only when it changed)."""
    python = LITELLM_VENV / "bin" / "python"
    stamp = LITELLM_VENV / ".lock.sha256"
    want = hashlib.sha256(LITELLM_LOCK.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return LITELLM_VENV
    print(f"installing {LITELLM_LOCK.name} into {LITELLM_VENV} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--require-hashes",
                    "--no-deps", "-r", str(LITELLM_LOCK)], check=True)
    stamp.write_text(want)
    return LITELLM_VENV


def litellm_proxy(port: int, upstream: str, tmp: Path) -> System:
    """LiteLLM's own proxy: master key, no database, no guardrails, the mock as its model."""
    venv = ensure_litellm_venv()
    config = tmp / "litellm.yaml"
    config.write_text(json.dumps({
        "model_list": [{"model_name": m, "litellm_params": {
            "model": f"openai/{m}", "api_base": upstream, "api_key": "sk-mock"}}
            for m in MODELS],
        "general_settings": {"master_key": LITELLM_KEY},
    }))
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": LITELLM_KEY,
           "LITELLM_LOG": "ERROR"}
    system = start("litellm", [str(venv / "bin" / "litellm"), "--config", str(config),
                               "--host", "127.0.0.1", "--port", str(port),
                               "--telemetry", "False"],
                   port, key=LITELLM_KEY, timeout=180, env=env, log=tmp / "litellm.log")
    system.notes.append("LiteLLM proxy 1.106.2, no database, no guardrails")
    return system


def chart(result_json: Path, png: Path) -> bool:
    """Draw the PNG with matplotlib from the LiteLLM bench venv; False when it is absent."""
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return False
    subprocess.run([str(python), str(HERE / "compare_chart.py"), str(result_json), str(png)],
                   check=True)
    return True


def describe(systems: list[System]) -> dict[str, Any]:
    return {s.name: {"url": s.url, "ready_s": round(s.ready_s, 3),
                     "ready_cpu_s": round(s.ready_cpu_s, 3), "notes": s.notes}
            for s in systems}
