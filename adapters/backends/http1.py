"""A lean HTTP/1.1 client for whole (non-streamed) upstream answers: one write per request,
a keep-alive pool, strict response framing.

aiohttp's client costs about 0.5 ms of latency per call on the gateway's hot path (a writer
task, timers, several callbacks per response); this asks the same with one write and reads
the answer with plain stream reads. Streams stay on aiohttp. Nothing is retried here: the
caller decides (a connection that could not be opened is `UpstreamUnreachable`, anything
after that is `UpstreamBroken`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from dataclasses import dataclass

from yarl import URL

MAX_HEAD_BYTES = 64 * 1024  # status line and headers (the StreamReader's line limit)
MAX_BODY_BYTES = 256 * 1024 * 1024
USER_AGENT = "lictor"  # some providers' front doors refuse requests without one
IDLE_S = 15.0  # a kept-alive connection idle longer is closed, not reused (aiohttp's default)
MAX_IDLE = 100  # kept-alive connections per upstream; more are closed after their answer
_NO_BODY_STATUS = {204, 304}
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_Key = tuple[str, str, int]
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UpstreamUnreachable(Exception):
    """No connection could be opened: the upstream surely did not see the request."""


class UpstreamBroken(Exception):
    """The connection failed or the answer is not valid HTTP/1.1, after the request was sent."""


@dataclass(slots=True)
class Http1Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header's values joined by ", "
    body: bytes  # decoded from gzip or deflate


@dataclass(slots=True)
class _Idle:
    conn: _Conn
    since: float


def _is_token(name: str) -> bool:
    """A header name: RFC 9110 token characters only (deleting them, in C, leaves nothing)."""
    return bool(name) and not name.encode().translate(None, _TOKEN)


def _check_header(name: str, value: str) -> None:
    if not _is_token(name) or "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"invalid upstream request header {name!r}")


def _request_head(url: URL, headers: dict[str, str], length: int) -> bytes:
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    if not url.is_default_port():
        host = f"{host}:{url.port}"
    lines = [f"POST {url.raw_path_qs} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}",
             "Accept-Encoding: gzip, deflate", f"Content-Length: {length}"]
    for name, value in headers.items():
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[str, int, dict[str, str]]:
    """Version, status and headers of a response head (ending in CRLF CRLF)."""
    try:
        text = raw[:-4].decode("latin-1")
        status_line, *lines = text.split("\r\n")
        version, code, *_ = status_line.split(" ", 2)
    except ValueError:
        raise UpstreamBroken("malformed status line") from None
    if (version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isascii()
            or not code.isdigit() or code[0] == "0"):
        raise UpstreamBroken("malformed status line")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if (not colon or not _is_token(name)
                or "\n" in value or "\r" in value or "\0" in value):
            raise UpstreamBroken("malformed header line")  # obs-fold and bare LF included
        key, value = name.lower(), value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return version, int(code), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size_total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        digits = line[:-2].split(b";", 1)[0].strip(b" \t")
        if not digits or any(c not in _HEX for c in digits):
            raise UpstreamBroken("malformed chunk size")
        size = int(digits, 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(parts)
        size_total += size
        if size_total > MAX_BODY_BYTES:
            raise UpstreamBroken("the answer is too large")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise UpstreamBroken("malformed chunk")


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size_total = 0
    while chunk := await reader.read(65536):
        size_total += len(chunk)
        if size_total > MAX_BODY_BYTES:
            raise UpstreamBroken("the answer is too large")
        parts.append(chunk)
    return b"".join(parts)


def _content_length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not (only := values.pop()).isdigit() or not only.isascii():
        raise UpstreamBroken("malformed Content-Length")
    length = int(only)
    if length > MAX_BODY_BYTES:
        raise UpstreamBroken("the answer is too large")
    return length


def _decode(body: bytes, encoding: str) -> bytes:
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":  # zlib-wrapped, as the RFC says, or raw, as some servers send
        decoder = zlib.decompressobj(zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:
        raise UpstreamBroken(f"unsupported Content-Encoding {coding!r}")
    try:
        out = decoder.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise UpstreamBroken(f"the answer is not valid {coding}") from None
    if len(out) > MAX_BODY_BYTES:
        raise UpstreamBroken("the answer is too large")
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[Http1Response, bool]:
    """The answer (interim 1xx answers skipped) and whether the connection can be reused."""
    while True:
        version, status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if status == 101:
            raise UpstreamBroken("the upstream switched protocols")
        if status >= 200:
            break
    reusable = version == "HTTP/1.1" and "close" not in {
        token.strip().lower() for token in headers.get("connection", "").split(",")}
    if status in _NO_BODY_STATUS:
        body = b""
    elif "transfer-encoding" in headers:
        if headers["transfer-encoding"].strip().lower() != "chunked":
            raise UpstreamBroken("unsupported Transfer-Encoding")
        body = await _read_chunked(reader)
        reusable = reusable and "content-length" not in headers  # both: never trust the rest
    elif "content-length" in headers:
        body = await reader.readexactly(_content_length(headers["content-length"]))
    else:
        body, reusable = await _read_to_eof(reader), False
    body = _decode(body, headers.get("content-encoding", ""))
    return Http1Response(status, headers, body), reusable


def _clean(conn: _Conn) -> bool:
    """Open, and nothing unread: bytes past the answer (or arriving while idle) would be
    taken for the next request's answer, so such a connection is never reused."""
    reader, writer = conn
    unread = getattr(reader, "_buffer", b"")  # asyncio.StreamReader's buffer (no public API)
    return not reader.at_eof() and not writer.is_closing() and not unread


class Http1Pool:
    """Keep-alive connections per (scheme, host, port); one request per connection at a time."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[_Key, list[_Idle]] = {}

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, key: _Key) -> _Conn:
        scheme, host, port = key
        try:
            return await asyncio.open_connection(
                host, port, limit=MAX_HEAD_BYTES, happy_eyeballs_delay=0.25,
                ssl=self._tls() if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None)
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}") from None

    def _take(self, key: _Key) -> _Conn | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            entry = idle.pop()
            if now - entry.since <= IDLE_S and _clean(entry.conn):
                return entry.conn
            entry.conn[1].close()
        return None

    def _put(self, key: _Key, conn: _Conn) -> None:
        """Keep `conn` for the next request, unless it holds bytes no request asked for;
        connections idle too long are closed on the way."""
        idle = self._idle.setdefault(key, [])
        now = time.monotonic()
        while idle and now - idle[0].since > IDLE_S:
            idle.pop(0).conn[1].close()
        if _clean(conn) and len(idle) < MAX_IDLE:
            idle.append(_Idle(conn, now))
        else:
            conn[1].close()

    async def post(self, url: URL, body: bytes, headers: dict[str, str]) -> Http1Response:
        """POST `body` to `url`; the whole answer. Cancel it (a timeout) at any point: the
        connection is then closed, never reused."""
        if url.scheme not in ("http", "https") or not url.raw_host or url.port is None:
            raise ValueError(f"not an http(s) URL: {url}")
        key = (url.scheme, url.raw_host, url.port)
        head = _request_head(url, headers, len(body))
        conn = self._take(key) or await self._connect(key)
        reader, writer = conn
        reusable = False
        try:
            writer.write(head + body)
            await writer.drain()
            resp, reusable = await _read_response(reader)
            return resp
        except asyncio.IncompleteReadError:
            raise UpstreamBroken("the connection closed before the answer was complete") \
                from None
        except asyncio.LimitOverrunError:
            raise UpstreamBroken("a header or chunk line is too long") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from None
        finally:
            if reusable:
                self._put(key, conn)
            else:
                writer.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for entry in idle:
                entry.conn[1].close()
        self._idle.clear()
