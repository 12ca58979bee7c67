"""The native HTTP/1.1 server on raw sockets: keep-alive, pipelining, Expect: 100-continue, chunked bodies."""

from __future__ import annotations

import asyncio
import json

from tests.support.router import FakeTier, fleet

CHAT = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 1}).encode()


def request(body: bytes = CHAT, extra: bytes = b"", path: bytes = b"/v1/chat/completions") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path, len(body), extra, body))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    """One response (content-length or chunked); headers lower-cased."""
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while (size := int((await reader.readline()).strip(), 16)) > 0:
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return status, headers, body


async def test_pipelined_requests_on_one_connection_are_answered_in_order():
    small = FakeTier("small")
    async with fleet(small) as (url, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(request() + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + request(path=b"/v1/nothing"))
        answers = [await read_response(reader) for _ in range(3)]
        writer.close()
    assert [a[0] for a in answers] == [200, 200, 404]
    assert json.loads(answers[0][2])["choices"][0]["message"]["content"] == "Hello there, friend."
    assert answers[1][2] == b'{"status":"ok"}'


async def test_expect_100_continue_and_chunked_request_bodies_are_served():
    async with fleet(FakeTier("small")) as (url, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"Expect: 100-continue\r\n\r\n" % len(CHAT))
        assert await reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        await reader.readline()
        writer.write(CHAT)
        first = await read_response(reader)
        half = len(CHAT) // 2
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, CHAT[:half], len(CHAT) - half, CHAT[half:]))
        second = await read_response(reader)
        writer.close()
    assert first[0] == 200 and second[0] == 200


async def test_connection_close_and_malformed_requests_end_the_connection():
    async with fleet(FakeTier("small")) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request(extra=b"Connection: close\r\n"))
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers["connection"] == "close" and await reader.read() == b""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NONSENSE\r\n\r\n")
        status, _, body = await read_response(reader)
        assert status == 400 and json.loads(body)["error"]["code"] == "malformed_http"
        assert await reader.read() == b""


async def test_a_huge_declared_body_is_refused_at_once():
    async with fleet(FakeTier("small")) as (url, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
        status, _, body = await read_response(reader)
        writer.close()
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


async def test_a_streamed_answer_is_chunked_and_ends_with_done():
    async with fleet(FakeTier("small")) as (url, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": True}).encode()
        writer.write(request(body) + request())  # a plain request right behind the stream
        status, headers, events = await read_response(reader)
        after = await read_response(reader)
        writer.close()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "text/event-stream" and events.endswith(b"data: [DONE]\n\n")
    assert after[0] == 200
