"""Internal faults on a real filesystem: the audit store's disk fills up. lictor refuses
traffic with a 503 that says why (fail closed, nothing released unaudited), and serves again
by itself once the fault clears; the chain still verifies."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import DEMO_KEY, StartLictor, audit_rows

from lictor.proxy.cli import main
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

