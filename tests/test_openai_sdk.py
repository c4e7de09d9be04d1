"""The real `openai` SDK, pointed at lictor by base_url: completions, streams, tool calls.

Runs against the built-in local model and, through passthrough, a loopback provider.
"""

from __future__ import annotations

import json

import openai
import pytest
from conftest import DEMO_KEY, audit_rows
from mock_openai import MockOpenAI

from lictor.proxy.server import BackgroundServer

MODELS = ["lictor-local", "mock-gpt"]


def client(server: BackgroundServer, key: str = DEMO_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def collect(stream: openai.Stream) -> tuple[str, list[dict[str, str]], list[str | None]]:
    """Text, tool calls (assembled from deltas) and finish reasons of a chat stream."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finishes: list[str | None] = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.id or ""
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return "".join(text), [calls[k] for k in sorted(calls)], finishes


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("model", MODELS)
def test_completion(lictor: BackgroundServer, model: str) -> None:
    resp = client(lictor).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello there, lictor."}]
    )
    assert resp.choices[0].message.content == "Hello there, lictor."
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.total_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream(lictor: BackgroundServer, model: str) -> None:
    stream = client(lictor).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "A streamed answer, in several chunks."}],
        stream=True,
    )
    text, calls, finishes = collect(stream)
    assert text == "A streamed answer, in several chunks."
    assert calls == []
    assert finishes == ["stop"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls(lictor: BackgroundServer, model: str, stream: bool) -> None:
    prompt = 'Let me check.\nCALL get_weather {"city": "Paris"}'
    kwargs = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [WEATHER_TOOL],
    }
    if stream:
        text, calls, finishes = collect(client(lictor).chat.completions.create(**kwargs,
                                                                              stream=True))
        assert finishes == ["tool_calls"]
    else:
        resp = client(lictor).chat.completions.create(**kwargs)
        message = resp.choices[0].message
        text = message.content or ""
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or []
        ]
        assert resp.choices[0].finish_reason == "tool_calls"
    assert text == "Let me check."
    assert len(calls) == 1 and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[0]["id"].startswith("call_")


def test_tool_result_round_trip(lictor: BackgroundServer, upstream: MockOpenAI) -> None:
    """A follow-up turn carrying the assistant's tool call and the tool result."""
    resp = client(lictor).chat.completions.create(
        model="mock-gpt",
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
            {"role": "user", "content": "Thanks, summarize."},
        ],
        tools=[WEATHER_TOOL],
    )
    assert resp.choices[0].message.content == "Thanks, summarize."
    sent = upstream.received[-1].body
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1",
                                   "content": "18 C and sunny"}


def test_models_endpoint(lictor: BackgroundServer) -> None:
    ids = [m.id for m in client(lictor).models.list()]
    assert ids == ["lictor-local", "mock-gpt"]


def test_passthrough_uses_lictor_key_not_agents(start_lictor, upstream: MockOpenAI,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's key never goes upstream; lictor injects the provider key it holds."""
    monkeypatch.setenv("MOCK_PROVIDER_KEY", "sk-provider-secret")
    server = start_lictor(models=[{
        "name": "mock-gpt", "backend": "passthrough", "base_url": upstream.base_url,
        "api_key_env": "MOCK_PROVIDER_KEY"}])
    client(server).chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
    headers = upstream.received[-1].headers
    assert headers["Authorization"] == "Bearer sk-provider-secret"
    assert DEMO_KEY not in json.dumps(headers)
    assert upstream.received[-1].body["model"] == "mock-gpt"


def test_unknown_model_is_404(lictor: BackgroundServer, upstream: MockOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(lictor).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-model" in info.value.message
    assert upstream.received == []
    assert audit_rows(lictor)[-1]["kind"] == "rejected_request"


def test_upstream_error_is_reported_and_audited(start_lictor) -> None:
    with MockOpenAI(fail_status=500) as failing:
        server = start_lictor(models=[{"name": "m", "backend": "passthrough",
                                       "base_url": failing.base_url}])
        with pytest.raises(openai.APIStatusError) as info:
            client(server).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 502
        with pytest.raises(openai.APIStatusError):
            collect(client(server).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
    kinds = [r["kind"] for r in audit_rows(server)]
    assert kinds == ["model_request", "upstream_error", "model_request", "upstream_error"]


def test_unreachable_upstream_is_502(start_lictor) -> None:
    server = start_lictor(models=[{"name": "m", "backend": "passthrough",
                                   "base_url": "http://127.0.0.1:9/v1"}])
    with pytest.raises(openai.APIStatusError) as info:
        client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert "cannot reach the upstream" in info.value.message
