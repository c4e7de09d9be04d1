"""Upstream faults: a provider that hangs, resets, fails, rate-limits, cuts a stream short or
streams garbage. The agent always gets a clear OpenAI-format error (or an error event ending
the stream, never `[DONE]`), nothing half-checked, and the failure is audited."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import requests
from aiohttp import web
from conftest import DEMO_KEY, StartLictor, audit_rows

from lictor.adapters.sse import DONE, frame
from lictor.proxy.server import AppThread, BackgroundServer

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, "delta": {"content": "Hello "}, "finish_reason": None}]}


class FaultyUpstream(AppThread):
    """A loopback provider whose next answers fail the way `mode` says."""

    def __init__(self) -> None:
        super().__init__(self._app, "127.0.0.1", 0)
        self.mode = "ok"
        self.requests = 0
        self.then_ok_after = -1  # >= 0: fail that many more times in `mode`, then answer
        self.retry_after = "7"
        self.cookies_seen: list[str] = []  # the Cookie header of each request, "" if none

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        streamed = bool(json.loads(await request.read()).get("stream"))
        self.requests += 1
        self.cookies_seen.append(request.headers.get("Cookie", ""))
        mode = self.mode
        if self.then_ok_after == 0:
            mode = "ok"
        elif self.then_ok_after > 0:
            self.then_ok_after -= 1
        if mode == "hang":
            await asyncio.sleep(30)
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()  # RST before any byte of an answer
            raise web.HTTPBadRequest()
        if mode in ("500", "502", "503"):
            return web.json_response({"error": {"message": "overloaded"}}, status=int(mode))
        if mode == "429":
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"Retry-After": self.retry_after})
        if mode == "not_json":
            return web.Response(text="<html>bad gateway</html>", content_type="text/html")
        if mode == "ok" and not streamed:
            return web.json_response(headers={"Set-Cookie": "lb=agent-a; Path=/"}, data={
                "id": "c1", "object": "chat.completion", "model": "m", "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": "Hello there"},
                    "finish_reason": "stop"}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Set-Cookie": "lb=agent-a; Path=/"})
        await resp.prepare(request)
        await resp.write(frame(CHUNK))
        if mode == "truncated":  # a clean end of the body, but no [DONE]
            await resp.write_eof()
        elif mode == "cut":  # the connection dies mid-stream
            await resp.write(b"data: {\"id\": \"c1\", \"cho")
            assert request.transport is not None
            request.transport.abort()
        elif mode == "garbage":
            await resp.write(b"data: this is not json\n\n")
        elif mode == "non_utf8":
            await resp.write(b"data: \xff\xfe\n\n")
        elif mode == "bad_shape":
            await resp.write(frame({"id": "c1", "choices": [{"index": "first"}]}))
        elif mode == "stall":
            await asyncio.sleep(30)
        await resp.write(DONE)
        return resp


@pytest.fixture(scope="module")
def faulty_server() -> Any:
    with FaultyUpstream() as upstream:
        yield upstream


@pytest.fixture
def faulty(faulty_server: FaultyUpstream) -> FaultyUpstream:
    faulty_server.then_ok_after, faulty_server.retry_after = -1, "7"
    faulty_server.cookies_seen.clear()
    return faulty_server


@pytest.fixture
def gateway(start_lictor: StartLictor, faulty: FaultyUpstream) -> BackgroundServer:
    return start_lictor(models=[{"name": "flaky", "backend": "passthrough",
                                 "base_url": faulty.url + "/v1", "timeout_s": 0.5}])


def _post(server: BackgroundServer, stream: bool) -> requests.Response:
    body = {"model": "flaky", "stream": stream,
            "messages": [{"role": "user", "content": "Hi, I am jane@example.com"}]}
    return requests.post(server.url + "/v1/chat/completions", json=body, timeout=20,
                         headers={"Authorization": f"Bearer {DEMO_KEY}"})


def _audited_failure(server: BackgroundServer, rid: str) -> dict[str, Any]:
    rows = [r for r in audit_rows(server) if r["request_id"] == rid]
    kinds = {r["kind"] for r in rows}
    assert "model_request" in kinds, kinds
    [last] = [r for r in rows if r["kind"] != "model_request"]
    return last


@pytest.mark.parametrize(("mode", "status", "code"), [
    ("hang", 504, "upstream_timeout"),
    ("reset", 502, "upstream_unreachable"),
    ("500", 502, "upstream_error"),
    ("503", 502, "upstream_error"),
    ("429", 429, "upstream_error"),
    ("not_json", 502, None),
])
def test_whole_answer_faults_are_clear_errors(gateway: BackgroundServer, faulty: FaultyUpstream,
                                              mode: str, status: int, code: str | None) -> None:
    faulty.mode = mode
    resp = _post(gateway, stream=False)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["message"] and error["code"] == code
    if mode == "429":
        assert resp.headers["Retry-After"] == "7"  # the agent's SDK backs off as asked
    record = _audited_failure(gateway, resp.headers["x-lictor-request-id"])
    assert record["status"] == status
    assert "jane@example.com" not in json.dumps(audit_rows(gateway))


@pytest.mark.parametrize(("mode", "status"), [
    ("hang", 504), ("reset", 502), ("503", 502), ("429", 429)])
def test_stream_faults_before_the_first_chunk_are_json_errors(
        gateway: BackgroundServer, faulty: FaultyUpstream, mode: str, status: int) -> None:
    faulty.mode = mode
    resp = _post(gateway, stream=True)
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["error"]["message"]


@pytest.mark.parametrize(("mode", "words"), [
    ("truncated", "truncated"),
    ("cut", "upstream stream failed"),
    ("garbage", "not JSON"),
    ("non_utf8", "not UTF-8"),
    ("bad_shape", "malformed stream event"),
    ("stall", "stalled"),
])
def test_mid_stream_faults_end_with_an_error_event_not_done(
        gateway: BackgroundServer, faulty: FaultyUpstream, mode: str, words: str) -> None:
    faulty.mode = mode
    resp = _post(gateway, stream=True)
    assert resp.status_code == 200  # the stream had begun
    events = [line.removeprefix("data: ") for line in resp.text.splitlines() if line]
    assert events[-1] != "[DONE]", "a broken stream must not look finished"
    error = json.loads(events[-1])["error"]
    assert words in error["message"]
    record = _audited_failure(gateway, resp.headers["x-lictor-request-id"])
    assert record["stream_error"]["status"] in (502, 504)


def test_the_gateway_recovers_when_the_upstream_does(gateway: BackgroundServer,
                                                     faulty: FaultyUpstream) -> None:
    faulty.mode = "503"
    assert _post(gateway, stream=False).status_code == 502
    faulty.mode = "ok"
    resp = _post(gateway, stream=True)
    assert resp.status_code == 200 and resp.text.rstrip().endswith("data: [DONE]")
    assert "Hello" in resp.text


def _retrying(start_lictor: StartLictor, faulty: FaultyUpstream, retries: int) -> BackgroundServer:
    return start_lictor(models=[{"name": "flaky", "backend": "passthrough", "timeout_s": 0.5,
                                 "base_url": faulty.url + "/v1", "retries": retries,
                                 "retry_backoff_s": 0.01}])


@pytest.mark.parametrize("mode", ["503", "502", "429"])
@pytest.mark.parametrize("stream", [False, True])
def test_retries_when_the_upstream_did_not_act(start_lictor: StartLictor,
                                               faulty: FaultyUpstream, mode: str,
                                               stream: bool) -> None:
    server = _retrying(start_lictor, faulty, retries=2)
    faulty.mode, faulty.then_ok_after, faulty.retry_after = mode, 2, "0.05"
    before = faulty.requests
    resp = _post(server, stream=stream)
    assert resp.status_code == 200, resp.text
    assert faulty.requests - before == 3  # two failures, then the answer
    assert "Hello" in resp.text


def test_retries_give_up_and_say_why(start_lictor: StartLictor, faulty: FaultyUpstream) -> None:
    server = _retrying(start_lictor, faulty, retries=2)
    faulty.mode, before = "503", faulty.requests
    resp = _post(server, stream=False)
    assert resp.status_code == 502 and "upstream error 503" in resp.json()["error"]["message"]
    assert faulty.requests - before == 3


def test_a_long_retry_after_goes_back_to_the_agent(start_lictor: StartLictor,
                                                   faulty: FaultyUpstream) -> None:
    server = _retrying(start_lictor, faulty, retries=3)
    faulty.mode, faulty.retry_after, before = "429", "30", faulty.requests
    resp = _post(server, stream=False)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "30"
    assert faulty.requests - before == 1  # not held for 30 s


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_no_retry_once_the_upstream_may_have_acted(start_lictor: StartLictor,
                                                   faulty: FaultyUpstream, mode: str) -> None:
    server = _retrying(start_lictor, faulty, retries=3)
    faulty.mode, before = mode, faulty.requests
    assert _post(server, stream=False).status_code in (502, 504)
    assert faulty.requests - before == 1


def test_an_unreachable_upstream_is_retried_then_refused(start_lictor: StartLictor) -> None:
    server = start_lictor(models=[{"name": "flaky", "backend": "passthrough", "retries": 2,
                                   "retry_backoff_s": 0.01,
                                   "base_url": "http://127.0.0.1:9/v1"}])
    resp = _post(server, stream=False)
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "upstream_unreachable"


@pytest.mark.parametrize("stream", [False, True])
def test_cookies_an_upstream_sets_are_never_sent_back(start_lictor: StartLictor,
                                                      faulty: FaultyUpstream,
                                                      stream: bool) -> None:
    """lictor's upstream clients serve every agent: a cookie set in one agent's answer
    must not ride along on the next request, whoever makes it. (By a host name: aiohttp's
    default jar keeps no cookies of IP addresses.)"""
    by_name = faulty.url.replace("127.0.0.1", "localhost") + "/v1"
    gateway = start_lictor(models=[{"name": "flaky", "backend": "passthrough",
                                    "base_url": by_name, "timeout_s": 5}])
    faulty.mode = "ok"
    for _ in range(3):
        assert _post(gateway, stream=stream).status_code == 200
    assert faulty.cookies_seen == ["", "", ""]
