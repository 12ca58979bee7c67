"""The demo's kube-proxy: one TCP proxy per Service port, balancing connections over ready pods.

Like kube-proxy it balances per connection (a keep-alive connection stays on its pod) and a
Service without ready endpoints refuses connections: the listening socket is closed while there
are none and reopened on the same port when one becomes ready, so a client sees
ECONNREFUSED exactly as it would from an empty ClusterIP Service.

It runs as its own process (``python -m tokenfleet.demo.proxy``), as kube-proxy does, so that the
data path never waits on the demo's own work: the kubelet writes one JSON line per change to
its stdin, ``{"name": "svc:port", "port": LISTEN, "endpoints": [POD_PORT, ...]}``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import sys

log = logging.getLogger("tokenfleet.demo.proxy")
CHUNK = 65536


def pick(endpoints: list[int], turn: int) -> int | None:
    """Round robin: the endpoint for the ``turn``-th connection; None when there is none."""
    return endpoints[turn % len(endpoints)] if endpoints else None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


class ServiceProxy:
    """Listens on 127.0.0.1:``port`` while ``endpoints`` (local pod ports) is not empty."""

    def __init__(self, name: str, port: int):
        self.name = name
        self.port = port
        self.endpoints: list[int] = []
        self.connections = 0
        self._turn = itertools.count()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def set_endpoints(self, endpoints: list[int]) -> None:
        """Balance over these pod ports from now on; open or close the listener as needed."""
        self.endpoints = sorted(endpoints)
        if self.endpoints and self._server is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self._server = await asyncio.start_server(self._handle, sock=sock, backlog=1024)
        elif not self.endpoints and self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        upstream_writer = None
        try:
            endpoint = pick(self.endpoints, next(self._turn))
            if endpoint is None:
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", endpoint)
            except OSError as err:
                log.debug("%s: endpoint %s refused: %s", self.name, endpoint, err)
                return
            self.connections += 1
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def serve_stdin() -> None:
    """Apply endpoint updates read from stdin (one JSON object per line) until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    proxies: dict[int, ServiceProxy] = {}
    while line := await reader.readline():
        try:
            update = json.loads(line)
            port = int(update["port"])
            proxy = proxies.setdefault(port, ServiceProxy(str(update.get("name", port)), port))
            await proxy.set_endpoints([int(p) for p in update.get("endpoints") or []])
        except (ValueError, KeyError, TypeError, OSError) as err:
            print(f"proxy: bad update {line!r}: {err}", file=sys.stderr, flush=True)
    for proxy in proxies.values():
        await proxy.close()


def main() -> None:
    try:
        from uvloop import run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        run = asyncio.run
    try:
        run(serve_stdin())
    except KeyboardInterrupt:  # pragma: no cover
        pass


if __name__ == "__main__":
    main()
