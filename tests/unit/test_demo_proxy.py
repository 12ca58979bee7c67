"""The demo's Service proxy: per-connection round robin, refused connections with no endpoints."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.procs import free_port
from tokenfleet.demo.proxy import ServiceProxy, pick


@pytest.mark.parametrize("endpoints, turn, expected", [
    ([], 0, None),
    ([1], 5, 1),
    ([1, 2, 3], 0, 1),
    ([1, 2, 3], 4, 2),
])
def test_round_robin_picks_endpoints_in_turn(endpoints, turn, expected):
    assert pick(endpoints, turn) == expected


async def named_server(name: bytes) -> tuple[asyncio.base_events.Server, int]:
    """A loopback server answering each line with ``name: line``."""
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(name + b": " + line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def ask(port: int, text: bytes = b"hi\n") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return answer


async def test_connections_are_balanced_over_the_endpoints_and_keep_their_pod():
    (a, pa), (b, pb) = await named_server(b"a"), await named_server(b"b")
    proxy = ServiceProxy("svc:80", free_port())
    try:
        await proxy.set_endpoints([pa, pb])
        answers = [await ask(proxy.port) for _ in range(4)]
        assert sorted(answers) == [b"a: hi\n", b"a: hi\n", b"b: hi\n", b"b: hi\n"]
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        seen = set()
        for _ in range(3):  # one keep-alive connection stays on one pod
            writer.write(b"again\n")
            seen.add((await reader.readline()).split(b":")[0])
        writer.close()
        assert len(seen) == 1
    finally:
        await proxy.close()
        a.close()
        b.close()


async def test_a_service_without_ready_endpoints_refuses_connections_until_one_is_ready():
    server, port = await named_server(b"pod")
    proxy = ServiceProxy("svc:80", free_port())
    try:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.set_endpoints([port])
        assert await ask(proxy.port) == b"pod: hi\n"
        await proxy.set_endpoints([])
        assert not proxy.listening
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.set_endpoints([port])  # the same port again
        assert await ask(proxy.port) == b"pod: hi\n"
    finally:
        await proxy.close()
        server.close()


async def test_a_dead_endpoint_closes_the_client_connection():
    proxy = ServiceProxy("svc:80", free_port())
    try:
        await proxy.set_endpoints([free_port()])  # nothing listens there
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await proxy.close()
