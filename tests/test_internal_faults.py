"""Internal faults on a real filesystem: the audit store's disk fills up, or is read-only at
start. lictor refuses traffic with a 503 that says why (fail closed, nothing released
unaudited), or refuses to start, and serves again once the fault clears; the chain verifies."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import DEMO_KEY, StartLictor, audit_rows

from lictor.proxy.cli import main
from lictor.proxy.config import load_config
from lictor.proxy.server import BackgroundServer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of our own, so filling it is a real ENOSPC, not a simulated one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("needs root and mount(8) for a real full filesystem: "
                    + done.stderr.decode().strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _chat(server: BackgroundServer) -> requests.Response:
    return requests.post(
        server.url + "/v1/chat/completions", timeout=20,
        headers={"Authorization": f"Bearer {DEMO_KEY}"},
        json={"model": "lictor-local",
              "messages": [{"role": "user", "content": "note for jane@example.com " + "x" * 3000}]})


def _refused_until_fixed(server: BackgroundServer) -> None:
    for _ in range(200):  # the WAL may still hold room for a few records
        resp = _chat(server)
        if resp.status_code != 200:
            break
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["code"] == "audit_unavailable" and "cannot write its audit log" in error["message"]
    assert "jane@example.com" not in resp.text


def test_a_full_disk_refuses_traffic_then_recovers(start_lictor: StartLictor,
                                                   small_disk: Path) -> None:
    server = start_lictor(data_dir=str(small_disk / "var"))
    assert _chat(server).status_code == 200
    filler = small_disk / "filler"
    with open(filler, "wb") as out:  # take every free byte
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    _refused_until_fixed(server)
    filler.unlink()
    resp = _chat(server)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-lictor-request-id"] in {r["request_id"] for r in audit_rows(server)}
    server.stop()
    assert main(["audit", "verify", "--data-dir", str(small_disk / "var")]) == 0



def test_a_read_only_data_dir_refuses_to_start_then_starts_when_writable(
        tmp_path: Path, small_disk: Path) -> None:
    """A store that cannot be written is found at start-up: lictor says why and exits
    (nothing served unaudited); once the disk is writable again it starts and serves."""
    data_dir = small_disk / "var"
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) != 0  # nothing there yet
    server = BackgroundServer(load_config(None, {
        "server": {"host": "127.0.0.1", "port": 0}, "data_dir": str(data_dir)})).start()
    assert _chat(server).status_code == 200
    server.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lictor.proxy.cli", "serve", "--port", "0",
             "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=60,
            check=False)
        assert done.returncode != 0
        assert "cannot start" in done.stderr and "read-only" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    server = BackgroundServer(load_config(None, {
        "server": {"host": "127.0.0.1", "port": 0}, "data_dir": str(data_dir)})).start()
    assert _chat(server).status_code == 200
    server.stop()
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
