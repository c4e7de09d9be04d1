"""Human approvals on the Responses API and Anthropic Messages, streamed and whole: the
same Cedar `@approval` policies hold a proposed call, in each protocol's own shape."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import StartLictor
from test_approvals import AGENT_KEY, _cli, _config, _pending_id, _quick, _refund


def _responses(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=AGENT_KEY, max_retries=0, timeout=60)


def _messages(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=AGENT_KEY, max_retries=0, timeout=60)


def test_pending_mode_tells_the_agent(start_lictor: StartLictor, tmp_path: Path) -> None:
    server = start_lictor(**_config(rules=_quick(tmp_path)))
    resp = _responses(server.url).responses.create(model="lictor-local", input=_refund(500))
    assert [o for o in resp.output if o.type == "function_call"] == []
    assert "needs approval" in resp.output_text
    message = _messages(server.url).messages.create(
        model="lictor-local", max_tokens=64,
        messages=[{"role": "user", "content": _refund(500)}])
    assert [b for b in message.content if b.type == "tool_use"] == []
    assert "needs approval" in "".join(b.text for b in message.content if b.type == "text")
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("protocol", ["responses", "messages"])
def test_streamed_answer_holds_until_approved(
        start_lictor: StartLictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], protocol: str) -> None:
    server = start_lictor(**_config(rules=_quick(tmp_path, "hold", timeout="60s")))
    got: dict[str, Any] = {}

    def stream() -> None:
        if protocol == "responses":
            events = list(_responses(server.url).responses.create(
                model="lictor-local", input=_refund(250), stream=True))
            final = events[-1].response
            got["calls"] = [o.arguments for o in final.output if o.type == "function_call"]
        else:
            with _messages(server.url).messages.stream(
                    model="lictor-local", max_tokens=64,
                    messages=[{"role": "user", "content": _refund(250)}]) as s:
                final = s.get_final_message()
            got["calls"] = [b.input for b in final.content if b.type == "tool_use"]

    thread = threading.Thread(target=stream)
    thread.start()
    approval_id = _pending_id(server, monkeypatch, capsys)
    _cli(server, "bob", "approve", approval_id, "--reason", "verified",
         monkeypatch=monkeypatch, capsys=capsys)
    thread.join(30)
    calls = got["calls"]
    assert len(calls) == 1 and "250" in str(calls[0])
