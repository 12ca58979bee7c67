"""A minimal pooled keep-alive HTTP/1.1 client (asyncio protocol + httptools), for the upstream hot path.

It does only what the router needs from a tier: POST a body and read the answer whole or as
it arrives (content-length or chunked), reuse connections, and time out on inactivity. It
costs a fraction of a general client per request, which is most of what a pass-through router
spends. Errors: ConnectFailed (nothing listens), UpstreamIOError (connection broke),
TimeoutError (no byte within the read timeout).
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

import httptools


class UpstreamIOError(Exception):
    """The connection failed after it was made (reset, closed early, unparsable answer)."""


class ConnectFailed(UpstreamIOError):
    """No connection could be made (refused, unreachable, connect timeout)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.response: Response | None = None

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport  # asyncio and uvloop set TCP_NODELAY on TCP transports themselves

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.response.last_activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.response._fail(UpstreamIOError(f"bad HTTP response: {err}"))
            self.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.response is not None and not self.response.complete:
            self.response._fail(UpstreamIOError("connection closed by the tier" + (f": {exc}" if exc else "")))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.response._head(self.parser.get_status_code(), self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        self.response._data(body)

    def on_message_complete(self) -> None:
        self.response._complete()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer being read: status first, then the body whole (``read``) or in pieces (``iter_any``)."""

    def __init__(self, pool: "Pool", conn: _Connection, timeout: float):
        self.pool, self.conn, self.timeout = pool, conn, timeout
        self.status = 0
        self.keep_alive = False
        self.complete = False
        self.error: BaseException | None = None
        self.chunks: deque[bytes] = deque()
        self.last_activity = conn.loop.time()
        self._waiter: asyncio.Future | None = None
        self._released = False

    # fed by the connection
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _head(self, status: int, keep_alive: bool) -> None:
        self.status, self.keep_alive = status, keep_alive
        self._wake()

    def _data(self, data: bytes) -> None:
        self.chunks.append(data)
        self._wake()

    def _complete(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self._wake()

    async def _wait(self) -> None:
        """Wait for the next event from the connection; the pool's sweeper ends silences past ``timeout``."""
        if self.error is not None:
            raise self.error
        self._waiter = waiter = self.conn.loop.create_future()
        waiting = self.pool._waiting
        waiting.add(self)
        try:
            await waiter
        finally:
            waiting.discard(self)
            self._waiter = None
        if self.error is not None:
            raise self.error

    def _expire_if_silent(self, now: float) -> None:
        if now - self.last_activity >= self.timeout:
            self._fail(TimeoutError(f"no data from the tier for {self.timeout:g}s"))

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            await self._wait()
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.release()
        return body

    async def iter_any(self):
        """Body pieces as they arrive."""
        while True:
            while self.chunks:
                yield self.chunks.popleft()
            if self.complete:
                return
            await self._wait()

    def release(self) -> None:
        """Give the connection back (complete, keep-alive) or close it."""
        if self._released:
            return
        self._released = True
        conn = self.conn
        conn.response = None
        if self.complete and self.keep_alive and self.error is None and not conn.closed \
                and len(self.pool._idle) < self.pool.max_idle:
            self.pool._idle.append(conn)
        else:
            conn.close()


class Pool:
    """Keep-alive connections to one origin (scheme http only: tiers are in-cluster services)."""

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float, max_idle: int = 1024):
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"{base_url}: only http:// tiers are supported by the fast client")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc.encode()
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_idle = max_idle
        self._idle: deque[_Connection] = deque()
        self._waiting: set[Response] = set()  # responses waiting for bytes, watched by the sweeper
        self._sweeper: asyncio.Task | None = None

    async def _sweep(self) -> None:
        """Time out silent responses: one periodic check instead of a timer per wait."""
        loop = asyncio.get_running_loop()
        interval = max(0.05, min(1.0, self.read_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for response in list(self._waiting):
                response._expire_if_silent(now)

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _new_connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as err:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {err or 'timeout'}") from None
        return conn

    async def request(self, method: bytes, path: str, body: bytes = b"", accept: bytes = b"application/json",
                      extra_headers: bytes = b"") -> Response:
        """Send a request and wait for the status line; a reused connection that died is retried once."""
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: %s\r\n" \
               b"Content-Length: %d\r\n%s\r\n" % (method, (self.prefix + path).encode(), self.host_header, accept,
                                                  len(body), extra_headers)
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        for attempt in (0, 1):
            conn = self._idle_connection()
            reused = conn is not None
            if conn is None:
                conn = await self._new_connection()
            response = Response(self, conn, self.read_timeout)
            conn.response = response
            conn.transport.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.transport.write(body)
            try:
                while not response.status:
                    await response._wait()
                return response
            except UpstreamIOError:
                response.release()
                if not reused or attempt:  # a fresh connection failing is the tier's fault
                    raise
            except BaseException:
                response.release()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle.pop().close()
