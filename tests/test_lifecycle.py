"""Graceful shutdown: SIGTERM lets the request in flight finish, then the audit is flushed
and a final signed checkpoint covers every record before the process exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from aiohttp import web
from conftest import DEMO_KEY
from mock_openai import MockOpenAI

from lictor.proxy.cli import main

DELAY_S = 1.5


class SlowUpstream(MockOpenAI):
    """The mock provider, answering each chat completion after DELAY_S."""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(DELAY_S)
        return await super()._chat(request)


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lictor.proxy.cli", "serve", "--config", str(config),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"lictor did not become ready: {proc.communicate()[1].decode()}")


def test_sigterm_drains_in_flight_requests_and_signs_a_final_checkpoint(tmp_path: Path) -> None:
    from test_audit_crash import _free_port

    data_dir, port = tmp_path / "var", _free_port()
    with SlowUpstream() as upstream:
        config = tmp_path / "lictor.yaml"
        config.write_text(
            f"data_dir: {data_dir}\n"
            "audit: {checkpoint_every_records: 100000, checkpoint_every_s: 3600}\n"
            "models:\n  - {name: slow, backend: passthrough, "
            f"base_url: '{upstream.base_url}'}}\n")
        proc = _serve(config, port)
        answers: list[requests.Response] = []
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "slow", "messages": [{"role": "user", "content": "write to a@b.example"}]}
        client = threading.Thread(target=lambda: answers.append(requests.post(
            url, json=body, headers={"Authorization": f"Bearer {DEMO_KEY}"}, timeout=30)))
        client.start()
        deadline = time.monotonic() + 10
        while not upstream.received and time.monotonic() < deadline:
            time.sleep(0.02)  # the request is now in flight, waiting on the upstream
        assert upstream.received, "the request never reached the upstream"
        proc.send_signal(signal.SIGTERM)
        client.join(30)
        assert proc.wait(30) == 0, proc.stderr.read().decode() if proc.stderr else ""

    [answer] = answers
    assert answer.status_code == 200
    assert "a@b.example" in answer.json()["choices"][0]["message"]["content"]
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        (records,) = db.execute("SELECT count(*) FROM records").fetchone()
        (signed,) = db.execute("SELECT max(size) FROM checkpoints").fetchone()
    assert records == 2  # the request and its response
    assert signed == records  # the final checkpoint covers the last record
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
