"""Crash test: kill -9 lictor while a load generator runs; after restart, every answer a
client received has its audit records, and the chain verifies (WAL, synchronous=normal)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from conftest import DEMO_KEY

from lictor.proxy.cli import main

BODY = {"model": "lictor-local",
        "messages": [{"role": "user", "content": "Email the invoice to jane.doe@example.com"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lictor.proxy.cli", "serve", "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("lictor did not become ready")


def _load(url: str, received: list[str], stop: threading.Event) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    while not stop.is_set():
        try:
            resp = session.post(url, json=BODY, headers=headers, timeout=10)
        except requests.RequestException:
            return  # the server is gone
        if resp.status_code == 200:
            received.append(resp.headers["x-lictor-request-id"])


def _audited(data_dir: Path) -> dict[str, set[str]]:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        rows = [json.loads(body) for (body,) in db.execute("SELECT body FROM records")]
    out: dict[str, set[str]] = {}
    for row in rows:
        out.setdefault(row["request_id"], set()).add(row["kind"])
    return out


def test_kill_9_under_load_loses_no_answered_record(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "var", _free_port()
    proc = _start(data_dir, port)
    received: list[str] = []
    stop = threading.Event()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    workers = [threading.Thread(target=_load, args=(url, received, stop)) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for worker in workers:
        worker.join(15)
    assert len(received) > 20  # the load really ran

    audited = _audited(data_dir)
    both = {"model_request", "model_response"}
    missing = [rid for rid in received if both - audited.get(rid, set())]
    assert not missing, f"{len(missing)} answered requests without their records"
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0

    again = _start(data_dir, port)  # the store opens after the crash and the chain goes on
    try:
        resp = requests.post(url, json=BODY, timeout=10,
                             headers={"Authorization": f"Bearer {DEMO_KEY}"})
        assert resp.status_code == 200
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(20)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert resp.headers["x-lictor-request-id"] in _audited(data_dir)
