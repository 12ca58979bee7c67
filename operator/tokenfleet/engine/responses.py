"""OpenAI response bodies and SSE chunks in the shapes vLLM's server writes them."""

from __future__ import annotations

import json
import uuid

from tokenfleet.engine import text
from tokenfleet.engine.answers import Choice
from tokenfleet.engine.protocol import Plan

DONE = b"data: [DONE]\n\n"
_CHAT_DELTA = (b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,"choices":[{"index":%d,'
               b'"delta":{"content":%s},"logprobs":null,"finish_reason":%s}]}\n\n')


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse(obj) -> bytes:
    """One server-sent event carrying ``obj``."""
    return b"data: " + dumps(obj) + b"\n\n"


def request_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex


def usage(plan: Plan, completion_tokens: int) -> dict:
    prompt_tokens = sum(p.tokens for p in plan.prompts)
    return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens, "prompt_tokens_details": None}


def _tops(choice: Choice, i: int, k: int) -> list[tuple[str, float]]:
    return text.top_logprobs(choice.tokens[i], choice.logprobs[i], k, choice.key + i)


def chat_logprobs(choice: Choice, start: int, end: int, k: int) -> dict:
    """``choices[].logprobs`` of chat completions for tokens [start, end)."""
    content = []
    for i in range(start, end):
        token = choice.tokens[i]
        tops = _tops(choice, i, k) if k else []
        content.append({
            "token": token, "logprob": choice.logprobs[i], "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in tops],
        })
    return {"content": content}


def completion_logprobs(choice: Choice, start: int, end: int, k: int, offset: int) -> dict:
    """``choices[].logprobs`` of legacy completions for tokens [start, end); offsets from ``offset``."""
    tokens, offsets = [], []
    for token in choice.tokens[start:end]:
        tokens.append(token)
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": choice.logprobs[start:end],
        "top_logprobs": [dict(_tops(choice, i, max(k, 1))) for i in range(start, end)],
        "text_offset": offsets,
    }


def _prefix(choice: Choice, plan: Plan) -> str:
    return choice.prompt.key if plan.echo else ""


def full_response(plan: Plan, choices: list[Choice], rid: str, created: int) -> dict:
    """The non-streaming response body."""
    out = []
    for c in choices:
        body = "".join(c.tokens)
        if plan.kind == "chat":
            item = {"index": c.index, "message": {"role": "assistant", "content": body, "tool_calls": []},
                    "logprobs": chat_logprobs(c, 0, c.count, plan.logprobs) if plan.logprobs is not None else None,
                    "finish_reason": c.finish_reason, "stop_reason": None}
        else:
            prefix = _prefix(c, plan)
            lp = completion_logprobs(c, 0, c.count, plan.logprobs, len(prefix)) if plan.logprobs is not None else None
            item = {"index": c.index, "text": prefix + body, "logprobs": lp,
                    "finish_reason": c.finish_reason, "stop_reason": None}
        out.append(item)
    return {
        "id": rid, "object": "chat.completion" if plan.kind == "chat" else "text_completion",
        "created": created, "model": plan.model, "choices": out,
        "usage": usage(plan, sum(c.count for c in choices)),
    }


def delta_chunk(plan: Plan, rid: str, created: int, choice: Choice, start: int, end: int,
                finished: bool) -> bytes:
    """The SSE chunk carrying tokens [start, end) of one choice (and its finish reason if ``finished``)."""
    piece = "".join(choice.tokens[start:end])
    reason = choice.finish_reason if finished else None
    if plan.kind == "chat" and plan.logprobs is None:  # the common case, formatted without building a dict
        return _CHAT_DELTA % (rid.encode(), created, dumps(plan.model), choice.index, dumps(piece),
                              dumps(reason))
    if plan.kind == "chat":
        lp = chat_logprobs(choice, start, end, plan.logprobs) if plan.logprobs is not None else None
        item = {"index": choice.index, "delta": {"content": piece}, "logprobs": lp, "finish_reason": reason}
        kind = "chat.completion.chunk"
    else:
        prefix = _prefix(choice, plan)
        offset = len(prefix) + sum(len(t) for t in choice.tokens[:start])
        lp = completion_logprobs(choice, start, end, plan.logprobs, offset) if plan.logprobs is not None else None
        item = {"index": choice.index, "text": (prefix if start == 0 else "") + piece, "logprobs": lp,
                "finish_reason": reason, "stop_reason": None}
        kind = "text_completion"
    return sse({"id": rid, "object": kind, "created": created, "model": plan.model, "choices": [item]})


def role_chunk(plan: Plan, rid: str, created: int, choice: Choice) -> bytes:
    """The first chat chunk of a choice: the assistant role and empty content."""
    item = {"index": choice.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
            "finish_reason": None}
    return sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": plan.model,
                "choices": [item]})


def usage_chunk(plan: Plan, rid: str, created: int, completion_tokens: int) -> bytes:
    """The last chunk with ``stream_options.include_usage``: no choices, the request's usage."""
    kind = "chat.completion.chunk" if plan.kind == "chat" else "text_completion"
    return sse({"id": rid, "object": kind, "created": created, "model": plan.model, "choices": [],
                "usage": usage(plan, completion_tokens)})
