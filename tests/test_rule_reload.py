"""Hot reload: an edited rule takes effect without a restart or a dropped request; a
broken edit is rejected, the last good policy stays, and the rejection is audited."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import openai
import requests
from conftest import DEMO_KEY, StartLictor, audit_rows

from lictor.proxy.server import BackgroundServer

RULE = """\
rules:
  - id: team.no-codename
    description: The project codename stays inside.
    match:
      patterns: ['{phrase}']
    verdict: block
"""


def _ask(server: BackgroundServer, text: str) -> int:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=DEMO_KEY, max_retries=0)
    try:
        client.chat.completions.create(model="lictor-local",
                                       messages=[{"role": "user", "content": text}])
    except openai.PermissionDeniedError:
        return 403
    return 200


def _policy(server: BackgroundServer) -> str:
    return str(requests.get(server.url + "/readyz", timeout=5).json()["policy"])


def _wait_for(check: Any, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _edit(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = time.time() + 1  # a new mtime even on coarse-grained file systems
    os.utime(path, (stamp, stamp))


def _codename_server(start_lictor: StartLictor, tmp_path: Path,
                     watch: bool) -> tuple[BackgroundServer, Path]:
    """lictor with the default pack and one team rule file that blocks "bluebird"."""
    folder = tmp_path / "team-rules"
    folder.mkdir()
    rule = folder / "codename.yaml"
    rule.write_text(RULE.format(phrase="bluebird"))
    server = start_lictor(models=[{"name": "lictor-local", "backend": "local"}],
                          rules={"packs": ["default"], "paths": [str(folder)],
                                 "watch": watch, "watch_interval_s": 0.1})
    return server, rule


def test_edit_applies_broken_edit_rejected_no_request_dropped(
        start_lictor: StartLictor, tmp_path: Path) -> None:
    server, rule = _codename_server(start_lictor, tmp_path, watch=True)
    assert _ask(server, "status of project falcon?") == 200

    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            statuses.append(_ask(server, "hello there"))

    background = threading.Thread(target=traffic)
    background.start()
    first = _policy(server)
    _edit(rule, RULE.format(phrase="falcon"))
    _wait_for(lambda: _policy(server) != first)
    assert _ask(server, "status of project falcon?") == 403

    good = _policy(server)
    _edit(rule, RULE.format(phrase="falcon").replace("verdict: block", "verdikt: block"))
    _wait_for(lambda: any(r["kind"] == "policy_reload" and r["status"] == "rejected"
                          for r in audit_rows(server)))
    stop.set()
    background.join(30)
    assert _policy(server) == good  # the last good policy stays
    assert _ask(server, "status of project falcon?") == 403
    assert statuses and set(statuses) == {200}  # every request during reloads answered

    rows = [r for r in audit_rows(server) if r["kind"] == "policy_reload"]
    assert [r["status"] for r in rows] == ["loaded", "rejected"]
    assert rows[0]["previous_policy_hash"].startswith(first)
    assert any(f"{rule}:6: rules.0.verdikt: unknown field 'verdikt'" in p
               for p in rows[1]["problems"])


def test_admin_reload_reports_problems(start_lictor: StartLictor, tmp_path: Path) -> None:
    folder = tmp_path / "team-rules"
    folder.mkdir()
    policy = folder / "p.cedar"
    policy.write_text('permit (principal, action, resource);\n')
    admin_key = "sk-admin-reload-0123456789"
    server = start_lictor(
        models=[{"name": "lictor-local", "backend": "local"}],
        rules={"packs": [], "paths": [str(folder)], "watch": False},
        admin={"keys": [{"id": "ops", "key": admin_key}]})
    policy.write_text('forbid (principal, action == Action::"call_tool", resource)\n'
                      'when { context.amount > "1" };\n')
    answer = requests.post(server.url + "/admin/rules/reload", timeout=10,
                           headers={"Authorization": f"Bearer {admin_key}"})
    assert answer.status_code == 422
    assert answer.json()["problems"] == [
        f"{policy}:1: policy p.cedar:1: unexpected type: expected Long but saw String"]
    unauthorized = requests.post(server.url + "/admin/rules/reload", timeout=10,
                                 headers={"Authorization": f"Bearer {DEMO_KEY}"})
    assert unauthorized.status_code == 401


def test_watch_can_be_turned_off(start_lictor: StartLictor, tmp_path: Path) -> None:
    server, rule = _codename_server(start_lictor, tmp_path, watch=False)
    _edit(rule, RULE.format(phrase="falcon"))
    time.sleep(0.5)
    assert _ask(server, "status of project falcon?") == 200
