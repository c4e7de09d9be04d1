"""The README's quickstart is true: two commands, the first serves, the second is CI's."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import requests

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the Quickstart section needs a ```sh block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = quickstart_commands()
    assert commands == ["./scripts/serve", "./scripts/test"]
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_serve_command_starts_lictor_on_embedded_defaults(tmp_path: Path) -> None:
    serve = quickstart_commands()[0]
    port = free_port()
    env = {**os.environ, "LICTOR_VENV": sys.prefix}  # the venv these tests run in
    env.pop("LICTOR_CONFIG", None)
    proc = subprocess.Popen(
        [str(ROOT / serve.removeprefix("./")), "--port", str(port),
         "--data-dir", str(tmp_path / "var")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # the first run may (re)install from the lock
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            raise AssertionError("lictor did not become ready")
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-lictor-demo", max_retries=0)
        reply = client.chat.completions.create(
            model="lictor-local", messages=[{"role": "user", "content": "ping"}])
        assert reply.choices[0].message.content == "ping"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "sk-lictor-demo" in out and "loopback" in out  # the banner states the demo key
    assert (tmp_path / "var" / "audit.sqlite3").exists()
