"""The lean HTTP/1.1 client for whole upstream answers, against a raw loopback server that
answers scripted bytes: framing, keep-alive, decoding, and every malformed answer refused."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from yarl import URL

from lictor.adapters.backends.http1 import (
    Http1Pool,
    Http1Response,
    UpstreamBroken,
    UpstreamUnreachable,
)

Answer = Callable[[int], bytes | None]  # request number -> bytes to answer (None: hang)


class RawServer:
    """Reads each request (head and Content-Length body), answers `answer(n)`; counts the
    connections it accepted and keeps the requests' raw bytes."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer, self.close_after = answer, close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                out = self.answer(len(self.requests))
                if out is None:
                    await asyncio.sleep(30)
                    return
                writer.write(out)
                await writer.drain()
                if self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def __aenter__(self) -> URL:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return URL(f"http://127.0.0.1:{port}/v1/chat/completions?x=1")

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def _ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


async def _post(pool: Http1Pool, url: URL, body: bytes = b'{"q": 1}') -> Http1Response:
    return await pool.post(url, body, {"Content-Type": "application/json",
                                       "Authorization": "Bearer sk-up"})


def test_one_write_per_request_and_keep_alive() -> None:
    async def go() -> None:
        server = RawServer(lambda n: _ok(b'{"n": %d}' % n))
        async with server as url:
            pool = Http1Pool()
            first, second = await _post(pool, url), await _post(pool, url)
            await pool.aclose()
        assert (first.status, first.body, second.body) == (200, b'{"n": 1}', b'{"n": 2}')
        assert first.headers["content-type"] == "application/json"
        assert server.connections == 1  # the second request reused the connection
        request = server.requests[0]
        assert request.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{url.port}\r\n".encode() in request
        assert b"Authorization: Bearer sk-up\r\n" in request
        assert b"User-Agent: lictor\r\n" in request
        assert request.endswith(b'\r\n\r\n{"q": 1}')
    run(go)


def test_chunked_with_extensions_and_trailers() -> None:
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;ext=1\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    async def go() -> None:
        server = RawServer(lambda n: answer)
        async with server as url:
            pool = Http1Pool()
            assert (await _post(pool, url)).body == b'{"a": 1}'
            assert (await _post(pool, url)).body == b'{"a": 1}'
            await pool.aclose()
        assert server.connections == 1
    run(go)


def test_interim_answers_are_skipped_and_gzip_is_decoded() -> None:
    packed = gzip.compress(b'{"big": "' + b"x" * 5000 + b'"}')
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(packed, b"Content-Encoding: gzip\r\n")
    async def go() -> None:
        async with RawServer(lambda n: answer) as url:
            resp = await _post(Http1Pool(), url)
        assert resp.body.startswith(b'{"big": "xxx') and len(resp.body) == 5011
    run(go)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
])
def test_no_reuse_when_the_upstream_closes(answer: bytes) -> None:
    async def go() -> None:
        server = RawServer(lambda n: answer, close_after=True)
        async with server as url:
            pool = Http1Pool()
            assert (await _post(pool, url)).body == b"{}"
            assert (await _post(pool, url)).body == b"{}"
        assert server.connections == 2
    run(go)


def test_an_answer_without_length_is_read_to_the_end() -> None:
    async def go() -> None:
        server = RawServer(lambda n: b"HTTP/1.1 200 OK\r\n\r\n{\"eof\": 1}", close_after=True)
        async with server as url:
            pool = Http1Pool()
            assert (await _post(pool, url)).body == b'{"eof": 1}'
            assert (await _post(pool, url)).body == b'{"eof": 1}'
        assert server.connections == 2
    run(go)


@pytest.mark.parametrize("answer", [
    b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # not HTTP/1.x
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 9\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\n{}",  # obs-fold
    b"HTTP/1.1 200 OK\r\nBad Header: 1\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nX-\xe9: 1\r\nContent-Length: 2\r\n\r\n{}",  # not a token
    b"HTTP/1.1 200 OK\r\nX(a): 1\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\n: 1\r\nContent-Length: 2\r\n\r\n{}",  # no name
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # then the connection closes
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    b"",  # closed with no answer at all
])
def test_malformed_answers_are_refused_and_the_connection_dropped(answer: bytes) -> None:
    async def go() -> None:
        server = RawServer(lambda n: answer if n == 1 else _ok(), close_after=True)
        async with server as url:
            pool = Http1Pool()
            with pytest.raises(UpstreamBroken):
                await _post(pool, url)
            assert (await _post(pool, url)).status == 200  # a new, clean connection
        assert server.connections == 2
    run(go)


def test_bytes_past_an_answer_are_never_taken_for_the_next_one() -> None:
    fake = _ok(b'{"fake": true}')
    async def go() -> None:
        server = RawServer(lambda n: _ok(b'{"n": %d}' % n) + (fake if n == 1 else b""))
        async with server as url:
            pool = Http1Pool()
            assert (await _post(pool, url)).body == b'{"n": 1}'
            await asyncio.sleep(0.05)  # the extra bytes arrive while the connection is idle
            assert (await _post(pool, url)).body == b'{"n": 2}'
            await pool.aclose()
        assert server.connections == 2
    run(go)


def test_a_cancelled_request_never_leaves_its_connection_in_the_pool() -> None:
    async def go() -> None:
        server = RawServer(lambda n: None if n == 1 else _ok())
        async with server as url:
            pool = Http1Pool()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await _post(pool, url)
            assert (await _post(pool, url)).status == 200
            await pool.aclose()
        assert server.connections == 2  # the late answer could not be read as the next one's
    run(go)


def test_unreachable_and_bad_requests_fail_before_sending() -> None:
    async def go() -> None:
        pool = Http1Pool()
        with pytest.raises(UpstreamUnreachable):
            await _post(pool, URL("http://127.0.0.1:9/v1/chat/completions"))
        async with RawServer(lambda n: _ok()) as url:
            for name, value in (("X-Key", "a\r\nInjected: 1"), ("X-Key", "a\0"),
                                ("Bad Name", "1"), ("X-\u00e9", "1"), ("", "1"),
                                ("X:Y", "1")):
                with pytest.raises(ValueError, match="invalid upstream request header"):
                    await pool.post(url, b"{}", {name: value})
            with pytest.raises(ValueError, match="not an http"):
                await pool.post(URL("ftp://127.0.0.1/x"), b"{}", {})
    run(go)
