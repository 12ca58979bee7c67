"""Server-sent events: split an upstream stream into events, relay them, assemble and replay responses."""

from __future__ import annotations

import re
from typing import AsyncIterator

import orjson

DONE = b"data: [DONE]\n\n"
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Complete events (``data: ...\\n\\n``) from arbitrary byte chunks."""
    buf = b""
    async for chunk in chunks:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buf += chunk
        start = 0
        while (end := buf.find(b"\n\n", start)) >= 0:
            yield buf[start:end + 2]
            start = end + 2
        buf = buf[start:]
    if buf.strip():
        yield buf.rstrip(b"\n") + b"\n\n"


def event_data(event: bytes) -> bytes | None:
    """The data of one event (several data lines joined); None for comments and keep-alives."""
    if event.startswith(b"data: ") and event.count(b"\n") == 2:
        return event[6:-2]
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def encode(chunk: dict) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def cost_comment(usd: float) -> bytes:
    """A streamed answer's cost as an SSE comment (clients skip comments): the header a stream cannot carry."""
    return b": x-tokenfleet-cost-usd: %.8f\n\n" % usd


def error_event(message: str, code: str = "upstream_error") -> bytes:
    """An in-stream error (OpenAI's shape) for failures after the stream was released."""
    return encode({"error": {"message": message, "type": "upstream_error", "param": None, "code": code}})


class Assembler:
    """Rebuilds the non-streamed response object from stream chunks, for the cache."""

    def __init__(self, kind: str, keep_logprobs: bool):
        self.kind = kind
        self.keep_logprobs = keep_logprobs
        self.meta: dict = {}
        self.usage: dict | None = None
        self.choices: dict[int, dict] = {}
        self.ok = True  # false for tool calls and errors: not rebuilt, so not cached

    def add(self, chunk: dict) -> None:
        if "error" in chunk:
            self.ok = False
            return
        for field in ("id", "created", "model", "system_fingerprint"):
            if field in chunk and field not in self.meta:
                self.meta[field] = chunk[field]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            state = self.choices.setdefault(choice.get("index", 0), {"parts": [], "role": None,
                                                                     "finish_reason": None, "logprobs": None})
            if self.kind == "chat":
                delta = choice.get("delta") or {}
                if delta.get("tool_calls") or delta.get("function_call"):
                    self.ok = False
                state["role"] = state["role"] or delta.get("role")
                if delta.get("content"):
                    state["parts"].append(delta["content"])
            elif choice.get("text"):
                state["parts"].append(choice["text"])
            if self.keep_logprobs and isinstance(choice.get("logprobs"), dict):
                _merge_logprobs(state, choice["logprobs"])
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def response(self) -> dict:
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            text = "".join(state["parts"])
            if self.kind == "chat":
                choice = {"index": index, "message": {"role": state["role"] or "assistant", "content": text}}
            else:
                choice = {"index": index, "text": text}
            choice["logprobs"] = state["logprobs"]
            choice["finish_reason"] = state["finish_reason"]
            choices.append(choice)
        obj = "chat.completion" if self.kind == "chat" else "text_completion"
        return {**self.meta, "object": obj, "choices": choices, "usage": self.usage}


def _merge_logprobs(state: dict, logprobs: dict) -> None:
    merged = state["logprobs"]
    if merged is None:
        state["logprobs"] = {k: list(v) if isinstance(v, list) else v for k, v in logprobs.items()}
        return
    for key, value in logprobs.items():
        if isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key].extend(value)


def replay(response: dict, kind: str, include_usage: bool) -> list[bytes]:
    """A cached response as a well-formed stream: role, content, finish, optional usage, [DONE]."""
    base = {k: response[k] for k in ("id", "created", "model") if k in response}
    base["object"] = "chat.completion.chunk" if kind == "chat" else "text_completion"
    events = []
    for choice in response.get("choices") or ():
        index = choice.get("index", 0)
        if kind == "chat":
            message = choice.get("message") or {}
            parts = [{"index": index, "delta": {"role": message.get("role", "assistant"), "content": ""},
                      "logprobs": None, "finish_reason": None},
                     {"index": index, "delta": {"content": message.get("content") or ""},
                      "logprobs": choice.get("logprobs"), "finish_reason": None},
                     {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")}]
        else:
            parts = [{"index": index, "text": choice.get("text") or "", "logprobs": choice.get("logprobs"),
                      "finish_reason": None},
                     {"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")}]
        events += [encode({**base, "choices": [p]}) for p in parts]
    if include_usage and response.get("usage"):
        events.append(encode({**base, "choices": [], "usage": response["usage"]}))
    events.append(DONE)
    return events


class Relay:
    """Forwards a live stream event by event, removing what the router added for itself.

    ``strip_logprobs``: the router asked for logprobs to judge confidence, the client did not.
    ``drop_usage``: the router asked for the usage chunk, the client did not. Events are parsed
    only when something must change or be read; otherwise the bytes pass through untouched.
    """

    def __init__(self, kind: str, *, strip_logprobs: bool, drop_usage: bool, assembler: Assembler | None):
        self.strip_logprobs = strip_logprobs
        self.drop_usage = drop_usage
        self.assembler = assembler
        self.usage: dict | None = None
        self.done = False
        self.events = 0

    def feed(self, event: bytes) -> bytes | None:
        """The bytes to send for this event, or None to drop it."""
        data = event_data(event)
        if data is None:
            return event
        if data == b"[DONE]":
            self.done = True
            return event
        self.events += 1
        if not (self.strip_logprobs or self.assembler or _USAGE.search(data)):
            return event
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict):
            return event
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        if self.assembler is not None:
            self.assembler.add(chunk)
        if self.drop_usage and usage and not chunk.get("choices"):
            return None
        if not self.strip_logprobs:
            return event
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and "logprobs" in choice:
                choice["logprobs"] = None
        if self.drop_usage:
            chunk.pop("usage", None)
        return encode(chunk)
