"""Human approvals end to end: real SDK client, real lictor, the `lictor approvals` CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import StartLictor, audit_rows
from test_openai_sdk import collect

from lictor.proxy.cli import main
from lictor.proxy.server import BackgroundServer

AGENT_KEY = "sk-refund-agent-0123456789"
OTHER_KEY = "sk-other-agent-0123456789"
ADMINS = {"alice": ("sk-admin-alice-0123456789", "finance"),
          "bob": ("sk-admin-bob-0123456789", "finance"),
          "carol": ("sk-admin-carol-0123456789", "support")}
LOCAL = [{"name": "lictor-local", "backend": "local"}]


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "agents": [{"id": "refund-agent", "team": "support", "key": AGENT_KEY},
                   {"id": "other-agent", "team": "support", "key": OTHER_KEY}],
        "admin": {"keys": [{"id": name, "team": team, "key": key}
                           for name, (key, team) in ADMINS.items()]},
        "models": LOCAL,
        **extra,
    }


def _ask(server: BackgroundServer, prompt: str, key: str = AGENT_KEY,
         headers: dict[str, str] | None = None) -> Any:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0,
                           timeout=60)
    return client.chat.completions.with_raw_response.create(
        model="lictor-local", messages=[{"role": "user", "content": prompt}],
        extra_headers=headers or {})


def _refund(amount: float) -> str:
    args = {"order_id": "DE-123456", "amount": amount, "currency": "EUR"}
    return f"CALL refund_order {json.dumps(args)}"


def _cli(server: BackgroundServer, admin: str, *args: str,
         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("LICTOR_ADMIN_KEY", ADMINS[admin][0])
    capsys.readouterr()
    assert main(["approvals", "--url", server.url, *args]) == 0
    return capsys.readouterr().out


def _pending_id(server: BackgroundServer, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str], within_s: float = 20) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        out = _cli(server, "alice", "list", "--status", "pending",
                   monkeypatch=monkeypatch, capsys=capsys)
        if out.startswith("apr_"):
            return out.split()[0]
        time.sleep(0.1)
    raise AssertionError("no pending approval appeared")


def test_refund_example_end_to_end(start_lictor: StartLictor, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """50 passes; 500 is held, approved with the CLI and released; the approval replayed
    for 600 is refused."""
    server = start_lictor(**_config(rules={"packs": ["default", "owasp-agentic", "examples"]}))

    small = _ask(server, _refund(50)).parse().choices[0].message
    assert [c.function.name for c in small.tool_calls] == ["refund_order"]

    held: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: held.update(raw=_ask(server, _refund(500))))
    thread.start()
    approval_id = _pending_id(server, monkeypatch, capsys)
    assert thread.is_alive()  # the agent's request is still waiting
    listed = _cli(server, "alice", "list", "--status", "pending",
                  monkeypatch=monkeypatch, capsys=capsys)
    assert "refund 500 EUR for order DE-123456" in listed and "1 from finance" in listed
    out = _cli(server, "alice", "approve", approval_id, "--reason", "ticket 4711 checked",
               monkeypatch=monkeypatch, capsys=capsys)
    assert "approved by alice: ticket 4711 checked" in out
    thread.join(30)
    raw = held["raw"]
    message = raw.parse().choices[0].message
    assert [json.loads(c.function.arguments)["amount"] for c in message.tool_calls] == [500]
    assert raw.headers["x-lictor-approval-status"] == "used"

    with pytest.raises(openai.PermissionDeniedError) as refused:
        _ask(server, _refund(600), headers={"x-lictor-approval": approval_id})
    assert "lictor.approval-mismatch" in refused.value.message
    assert f"approval {approval_id} was given for another action" in refused.value.message

    kinds = [r["kind"] for r in audit_rows(server)]
    assert {"approval_requested", "approval_vote", "approval_used",
            "approval_refused"} <= set(kinds)
    vote = next(r for r in audit_rows(server) if r["kind"] == "approval_vote")
    assert vote["principal"] == {"admin": "alice", "team": "finance"}
    assert vote["reason"] == "ticket 4711 checked"
    assert vote["approval"]["status"] == "approved"


QUICK_POLICY = """
@id("refund-needs-finance")
@needs_approval("finance")
@approval_mode("{mode}")
@approval_timeout("1s")
@summary("refund {{amount}} {{currency}} for order {{order_id}}")
forbid (principal, action == Action::"call_tool", resource == Tool::"refund_order")
when {{ context.amount > 100 }};

@id("wire-needs-two")
@needs_approval("finance")
@approvers("2")
@summary("wire {{amount}} to {{to}}")
forbid (principal, action == Action::"call_tool", resource == Tool::"wire_money")
when {{ context.amount > 10000 }};
"""


def _quick(tmp_path: Path, mode: str = "pending", timeout: str = "1s") -> dict[str, Any]:
    folder = tmp_path / f"rules-{mode}"
    folder.mkdir(exist_ok=True)
    policy = QUICK_POLICY.format(mode=mode).replace('"1s"', f'"{timeout}"')
    (folder / "approvals.cedar").write_text(policy)
    return {"packs": ["default"], "paths": [str(folder)]}


def _calls(raw: Any) -> list[dict[str, Any]]:
    message = raw.parse().choices[0].message
    return [json.loads(c.function.arguments) for c in message.tool_calls or []]


def test_pending_mode_answers_at_once_and_survives_a_restart(
        start_lictor: StartLictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(rules=_quick(tmp_path))
    first = start_lictor(**config)
    raw = _ask(first, _refund(500))
    assert _calls(raw) == []
    approval_id = raw.headers["x-lictor-approval-id"]
    assert raw.headers["x-lictor-approval-status"] == "pending"
    text = raw.parse().choices[0].message.content
    assert f"needs approval {approval_id}" in text and "Ask again once it is approved" in text
    again = _ask(first, _refund(500))  # asking again reuses the same pending approval
    assert again.headers["x-lictor-approval-id"] == approval_id
    first.stop()

    second = start_lictor(**config)
    assert _cli(second, "bob", "list", "--status", "pending", monkeypatch=monkeypatch,
                capsys=capsys).startswith(approval_id)
    with pytest.raises(SystemExit, match="needs people from: finance; carol is in support"):
        _cli(second, "carol", "approve", approval_id, "--reason", "ok",
             monkeypatch=monkeypatch, capsys=capsys)
    _cli(second, "bob", "approve", approval_id, "--reason", "fine",
         monkeypatch=monkeypatch, capsys=capsys)
    # another agent, or other arguments, do not get the approval
    assert _calls(_ask(second, _refund(500), key=OTHER_KEY)) == []
    assert _calls(_ask(second, _refund(501))) == []
    assert [c["amount"] for c in _calls(_ask(second, _refund(500)))] == [500]
    assert _calls(_ask(second, _refund(500))) == []  # used once


def test_hold_times_out_to_pending_and_denial_is_told(
        start_lictor: StartLictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = start_lictor(**_config(rules=_quick(tmp_path, "hold")))
    started = time.monotonic()
    raw = _ask(server, _refund(700))
    assert 0.9 < time.monotonic() - started < 10
    assert raw.headers["x-lictor-approval-status"] == "pending"
    approval_id = raw.headers["x-lictor-approval-id"]
    _cli(server, "alice", "deny", approval_id, "--reason", "duplicate refund",
         monkeypatch=monkeypatch, capsys=capsys)
    with pytest.raises(SystemExit, match="is denied, not pending"):
        _cli(server, "bob", "approve", approval_id, "--reason", "x",
             monkeypatch=monkeypatch, capsys=capsys)
    raw = _ask(server, _refund(700))
    new_id = raw.headers["x-lictor-approval-id"]
    assert new_id != approval_id  # a denied approval ends; asking again is a new request
    records = [r for r in audit_rows(server) if r["kind"] == "approval_vote"]
    assert records[-1]["approval"]["status"] == "denied"


def test_two_approvers_and_expiry(start_lictor: StartLictor, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    server = start_lictor(**_config(rules=_quick(tmp_path),
                                    approvals={"valid_for": "2s"}))
    wire = 'CALL wire_money {"amount": 20000, "to": "jane.doe@example.com"}'
    raw = _ask(server, wire)
    approval_id = raw.headers["x-lictor-approval-id"]
    listed = _cli(server, "alice", "list", monkeypatch=monkeypatch, capsys=capsys)
    assert "wire 20000 to <EMAIL" in listed and "jane.doe" not in listed
    _cli(server, "alice", "approve", approval_id, "--reason", "first",
         monkeypatch=monkeypatch, capsys=capsys)
    with pytest.raises(SystemExit, match="alice has already decided"):
        _cli(server, "alice", "approve", approval_id, "--reason", "again",
             monkeypatch=monkeypatch, capsys=capsys)
    assert _calls(_ask(server, wire)) == []  # one of two is not enough
    _cli(server, "bob", "approve", approval_id, "--reason", "second",
         monkeypatch=monkeypatch, capsys=capsys)
    time.sleep(2.2)
    raw = _ask(server, wire)
    assert _calls(raw) == []  # the approval expired before it was used
    assert raw.headers["x-lictor-approval-id"] != approval_id
    data_files = b"".join(p.read_bytes() for p in (tmp_path / "var").iterdir() if p.is_file())
    assert b"jane.doe@example.com" not in data_files


def test_streamed_answer_holds_until_approved(
        start_lictor: StartLictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = start_lictor(**_config(rules=_quick(tmp_path, "hold", timeout="60s")))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=AGENT_KEY, max_retries=0,
                           timeout=60)
    got: dict[str, Any] = {}

    def stream() -> None:
        got["result"] = collect(client.chat.completions.create(
            model="lictor-local", stream=True,
            messages=[{"role": "user", "content": _refund(250)}]))

    thread = threading.Thread(target=stream)
    thread.start()
    approval_id = _pending_id(server, monkeypatch, capsys)
    _cli(server, "bob", "approve", approval_id, "--reason", "verified",
         monkeypatch=monkeypatch, capsys=capsys)
    thread.join(30)
    _, calls, finishes = got["result"]
    assert [json.loads(c["arguments"])["amount"] for c in calls] == [250]
    assert finishes == ["tool_calls"]
