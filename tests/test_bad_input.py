"""Bad input gets a clear 4xx in OpenAI error format, is audited, and never goes upstream."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from conftest import DEMO_KEY, audit_rows
from mock_openai import MockOpenAI

from lictor.proxy.server import BackgroundServer

GOOD = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


def post(server: BackgroundServer, data: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(server.url + "/v1/chat/completions", data=data, headers=headers,
                         timeout=10)


def auth(content_type: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": content_type}


CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("malformed JSON", b'{"model": "mock-gpt", "messages": [', auth(), 400, "invalid_json"),
    ("invalid UTF-8", b'{"model": "\xff\xfe"}', auth(), 400, "invalid_json"),
    ("wrong content type", json.dumps(GOOD).encode(), auth("text/plain"), 415,
     "unsupported_media_type"),
    ("body over the limit", json.dumps({**GOOD, "pad": "x" * 20_000}).encode(), auth(), 413,
     "request_too_large"),
    ("missing key", json.dumps(GOOD).encode(), {"Content-Type": "application/json"}, 401,
     "invalid_api_key"),
    ("unknown key", json.dumps(GOOD).encode(),
     {"Authorization": "Bearer sk-not-a-key", "Content-Type": "application/json"}, 401,
     "invalid_api_key"),
    ("messages missing", json.dumps({"model": "mock-gpt"}).encode(), auth(), 400,
     "invalid_request"),
    ("bad role", json.dumps({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
     auth(), 400, "invalid_request"),
    ("JSON array body", b"[1, 2]", auth(), 400, "invalid_request"),
]


@pytest.fixture
def small_lictor(start_lictor: Any, upstream: MockOpenAI) -> BackgroundServer:
    server: BackgroundServer = start_lictor(
        server={"host": "127.0.0.1", "port": 0, "max_body_bytes": 16_384},
        models=[{"name": "mock-gpt", "backend": "passthrough", "base_url": upstream.base_url}],
    )
    return server


@pytest.mark.parametrize(("name", "data", "headers", "status", "code"), CASES,
                         ids=[c[0] for c in CASES])
def test_rejected(small_lictor: BackgroundServer, upstream: MockOpenAI, name: str, data: bytes,
                  headers: dict[str, str], status: int, code: str) -> None:
    resp = post(small_lictor, data, headers)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"] and isinstance(error["message"], str)
    assert set(error) == {"message", "type", "param", "code"}
    assert upstream.received == []
    record = audit_rows(small_lictor)[-1]
    assert record["kind"] == "rejected_request"
    assert record["status"] == status
    assert record["request_id"] == resp.headers["x-lictor-request-id"]
    if status == 401:
        assert record["principal"] is None
    else:
        assert record["principal"]["agent"] == "demo-agent"


def test_chunked_body_over_limit(small_lictor: BackgroundServer, upstream: MockOpenAI) -> None:
    """No Content-Length (chunked): the limit still holds while reading."""
    def body() -> Any:
        yield b'{"model": "mock-gpt", "pad": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}'

    resp = requests.post(small_lictor.url + "/v1/chat/completions", data=body(),
                         headers=auth(), timeout=10)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"
    assert upstream.received == []


def test_unknown_path_and_method_are_openai_errors(small_lictor: BackgroundServer) -> None:
    resp = requests.get(small_lictor.url + "/v1/nothing-here", timeout=10)
    assert resp.status_code == 404 and "error" in resp.json()
    resp = requests.get(small_lictor.url + "/v1/chat/completions", timeout=10)
    assert resp.status_code == 405 and "error" in resp.json()


def test_health_endpoints(small_lictor: BackgroundServer) -> None:
    assert requests.get(small_lictor.url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(small_lictor.url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    before = ready.json()["audit_records"]
    requests.get(small_lictor.url + "/v1/models", timeout=10)  # rejected: no key, audited
    after = requests.get(small_lictor.url + "/readyz", timeout=10).json()["audit_records"]
    assert after == before + 1


def test_models_needs_a_key(small_lictor: BackgroundServer) -> None:
    resp = requests.get(small_lictor.url + "/v1/models", timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_unexpected_failure_is_a_500_and_nothing_goes_upstream(
    small_lictor: BackgroundServer, upstream: MockOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lictor.adapters import openai_chat

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(openai_chat, "apply_request", broken)
    resp = post(small_lictor, json.dumps(GOOD).encode(), auth())
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "internal_error"
    assert upstream.received == []


@pytest.mark.parametrize(("content_type", "status"), [
    ("application/json", 200),  # the exact header SDKs send: aiohttp's parse is skipped
    ("application/json; charset=utf-8", 200),
    ("Application/JSON", 200),
    ("application/jsonx", 415),
    ("text/json", 415),
])
def test_content_type_is_judged_by_its_media_type(
        small_lictor: BackgroundServer, upstream: MockOpenAI, content_type: str,
        status: int) -> None:
    resp = post(small_lictor, json.dumps(GOOD).encode(), auth(content_type))
    assert resp.status_code == status, resp.text
    assert len(upstream.received) == (1 if status == 200 else 0)
