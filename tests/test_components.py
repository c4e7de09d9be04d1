"""Smaller units: SSE reading, the local model, config errors, agent keys, fail closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lictor.adapters import openai_chat
from lictor.adapters.backends.local_model import answer
from lictor.adapters.errors import ProtocolError
from lictor.adapters.sse import SseFormatError, read_json_events
from lictor.enforcement.engine import INTERNAL_ERROR_RULE, Engine
from lictor.enforcement.types import Principal, Verdict
from lictor.proxy.agent_keys import AgentKeys
from lictor.proxy.config import ConfigError, load_config
from lictor.proxy.server import build_gateway
from lictor.rules.loader import RuleLoadError, default_paths, load_policy


async def _lines(data: bytes) -> AsyncIterator[bytes]:
    for line in data.splitlines(keepends=True):
        yield line


def events(data: bytes) -> list[dict[str, object]]:
    async def go() -> list[dict[str, object]]:
        return [e async for e in read_json_events(_lines(data))]

    return asyncio.run(go())


def test_sse_reader_handles_comments_multiline_and_done() -> None:
    data = (b': keep-alive\n\ndata: {"a":\ndata: 1}\n\ndata: {"b": 2}\r\n\r\n'
            b'data: [DONE]\n\ndata: {"c": 3}\n\n')
    assert events(data) == [{"a": 1}, {"b": 2}]


def test_sse_reader_rejects_garbage() -> None:
    with pytest.raises(SseFormatError):
        events(b"data: not json\n\n")


def test_local_model_echo_and_calls() -> None:
    text, calls = answer([{"role": "system", "content": "x"},
                          {"role": "user", "content": 'Hi\nCALL f {"a": 1}\nCALL g not-json'}])
    assert text == "Hi\nCALL g not-json"
    assert [c["function"]["name"] for c in calls] == ["f"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"a": 1}
    again = answer([{"role": "user", "content": 'Hi\nCALL f {"a": 1}\nCALL g not-json'}])
    assert again[1][0]["id"] == calls[0]["id"]  # deterministic


def test_parse_request_names_the_bad_field() -> None:
    with pytest.raises(ProtocolError) as info:
        openai_chat.parse_request({"model": "m", "messages": [
            {"role": "user", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": 5}]}]})
    assert info.value.param == "messages[1].content[0].text"
    with pytest.raises(ProtocolError) as info:
        openai_chat.parse_request({"model": "m", "messages": [{"role": "user"}], "stream": "yes"})
    assert info.value.param == "stream"


def test_parse_request_collects_segments_with_trust() -> None:
    action = openai_chat.parse_request({"model": "m", "messages": [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "result"}]})
    assert [(s.trust.value, s.text) for s in action.segments] == [
        ("system", "rules"), ("user", "hi"), ("assistant", "{}"), ("tool", "result")]


def test_config_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "lictor.yaml"
    path.write_text("server:\n  port: 8787\n  hots: 0.0.0.0\n"
                    "models:\n  - name: x\n    backend: passthrough\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:3: server.hots: unknown setting 'hots'" in message
    assert f"{path}:5:" in message and "needs `base_url`" in message


def test_config_env_var_and_relative_rule_paths(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text("rules:\n  packs: [default]\n  paths: [mine]\n")
    monkeypatch.setenv("LICTOR_CONFIG", str(path))
    config = load_config()
    assert config.rules.paths == [tmp_path / "mine"]
    assert [m.name for m in config.models] == ["lictor-local"]  # defaults kept


def test_demo_key_only_on_loopback() -> None:
    on_loopback = AgentKeys(load_config(None, {"server": {"host": "127.0.0.1"}}))
    assert on_loopback.authenticate("Bearer sk-lictor-demo") == Principal("demo-agent", "demo",
                                                                          "local")
    exposed = AgentKeys(load_config(None, {"server": {"host": "0.0.0.0"}}))
    assert exposed.authenticate("Bearer sk-lictor-demo") is None
    assert on_loopback.authenticate("Basic sk-lictor-demo") is None
    assert on_loopback.authenticate(None) is None


def test_key_from_env_and_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    monkeypatch.setenv("BOT_KEY", "sk-from-env")
    config = load_config(None, {"agents": [
        {"id": "a", "key_env": "BOT_KEY"},
        {"id": "b", "key_sha256": hashlib.sha256(b"sk-hashed").hexdigest()}]})
    keys = AgentKeys(config)
    assert keys.authenticate("Bearer sk-from-env").agent_id == "a"  # type: ignore[union-attr]
    assert keys.authenticate("Bearer sk-hashed").agent_id == "b"  # type: ignore[union-attr]
    monkeypatch.delenv("BOT_KEY")
    with pytest.raises(ConfigError, match="BOT_KEY is not set"):
        AgentKeys(config)


def test_bad_rule_file_fails_startup(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    description: d\n    match: {patterns: [a]}\n"
                   "    verdict: block\n    mdoe: shadow\n")
    config = load_config(None, {"rules": {"packs": ["default"], "paths": [str(bad)]},
                                "data_dir": str(tmp_path / "var")})
    with pytest.raises(RuleLoadError) as info:
        build_gateway(config)
    assert f"{bad}:6:" in str(info.value) and "unknown field 'mdoe'" in str(info.value)


AGENT = Principal("a")


def engine(tmp_path: Path | None = None, rules: str | None = None,
           packs: bool = True) -> Engine:
    """An engine over the default packs (if `packs`) and, given `rules`, one more rule file."""
    paths = default_paths() if packs else []
    if rules is not None:
        assert tmp_path is not None
        (tmp_path / "extra.yaml").write_text(rules)
        paths = [*paths, tmp_path / "extra.yaml"]
    return Engine(load_policy(paths), [AGENT])


def test_engine_fails_closed_when_a_check_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    default = engine()
    action = openai_chat.parse_request({"model": "m", "messages": [{"role": "user",
                                                                    "content": "hello"}]})

    def boom(*args: object) -> None:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(Engine, "scan_window", boom)  # the detector itself
    outcome = default.evaluate_request(AGENT, action)
    assert outcome.decision.verdict is Verdict.BLOCK
    assert outcome.decision.findings[0].rule_id == INTERNAL_ERROR_RULE
    assert "fails closed" in outcome.decision.findings[0].message


def test_shadow_rules_record_but_do_not_act(tmp_path: Path) -> None:
    shadowed = engine(tmp_path, "rules:\n  - id: watch.refunds\n    description: d\n"
                                "    match: {patterns: ['\\brefund\\b']}\n"
                                "    verdict: block\n    mode: shadow\n")
    action = openai_chat.parse_request({"model": "m", "messages": [
        {"role": "user", "content": "please refund me"}]})
    decision = shadowed.evaluate_request(AGENT, action).decision
    assert decision.verdict is Verdict.ALLOW
    assert [(f.rule_id, f.shadow) for f in decision.findings] == [("watch.refunds", True)]


def test_without_cedar_policies_nothing_is_permitted(tmp_path: Path) -> None:
    """Cedar denies by default: a policy set with no permit blocks every model call."""
    bare = engine(tmp_path, "rules: []\n", packs=False)
    action = openai_chat.parse_request({"model": "m", "messages": [
        {"role": "user", "content": "hello"}]})
    decision = bare.evaluate_request(AGENT, action).decision
    assert decision.verdict is Verdict.BLOCK
    assert decision.findings[0].rule_id == "cedar:no policy permits it"


def test_finding_evidence_never_holds_raw_pii(tmp_path: Path) -> None:
    """Evidence goes into audit records: personal data in a matched phrase is redacted."""
    from lictor.enforcement.types import Action, ActionKind, Direction, Segment, Trust

    flagging = engine(tmp_path, "rules:\n  - id: out.mail-to\n    description: d\n"
                                "    applies: {direction: response, trust: [assistant]}\n"
                                "    match: {patterns: ['\\bsend it to \\S+']}\n"
                                "    verdict: flag\n")
    text = "Done, send it to jane.doe@example.com now"
    action = Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, "openai.chat",
                    segments=[Segment(text, Trust.ASSISTANT)])
    decision = flagging.evaluate_response(AGENT, action)
    assert decision.verdict is Verdict.FLAG
    assert decision.findings[0].evidence == "send it to <EMAIL_ADDRESS>"


def test_typed_placeholder_in_an_earlier_message_is_never_reused() -> None:
    """A user types <EMAIL_1> in one message and a real address in the next: the address
    must get another number, or the typed text would be 'restored' to it."""
    default = engine()
    body = {"model": "m", "messages": [
        {"role": "user", "content": "what does <EMAIL_1> mean in your output?"},
        {"role": "user", "content": "also mail jane.doe@example.com"}]}
    for _ in range(2):  # the second time, the history cache replays the first
        outcome = default.evaluate_request(AGENT, openai_chat.parse_request(body))
        assert outcome.masked_texts[1] == "also mail <EMAIL_2>"
        assert outcome.vault.restore("<EMAIL_1> and <EMAIL_2>") == (
            "<EMAIL_1> and jane.doe@example.com")


def test_history_cache_gives_the_same_outcome_as_a_fresh_engine() -> None:
    cached = engine()
    turns = [{"role": "user", "content": f"turn {i}: mail u{i}@example.com or call "
                                         f"+44 20 7946 0{i:03d}"} for i in range(6)]
    for n in range(1, 7):
        body = {"model": "m", "messages": turns[:n]}
        fresh = engine()
        a = cached.evaluate_request(AGENT, openai_chat.parse_request(body))
        b = fresh.evaluate_request(AGENT, openai_chat.parse_request(body))
        assert a.masked_texts == b.masked_texts and a.audit_texts == b.audit_texts
        assert a.decision.findings == b.decision.findings
        assert a.vault.entities() == b.vault.entities()
