"""Cache keys for OpenAI requests, shared by the router (local LRU, coalescing) and the cache service.

Pure functions. Two requests share an exact key only if tenant, model scope, endpoint kind,
the full message list (or prompt) and every parameter that changes the output are equal.
The semantic partition holds everything except the last user message: a semantic hit may
only come from the same tenant, model, sampling parameters and conversation context.
"""

from __future__ import annotations

import hashlib
import json

# Request fields that change what the model generates. Anything else (stream, user,
# stream_options, metadata, ...) does not enter the key.
OUTPUT_PARAMS = (
    "temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "logprobs",
    "top_logprobs", "response_format", "tools", "tool_choice", "functions", "function_call",
    "echo", "suffix", "best_of", "guided_json", "guided_regex", "guided_choice", "reasoning_effort",
    # vLLM's extra sampling parameters
    "min_tokens", "ignore_eos", "stop_token_ids", "include_stop_str_in_output", "guided_grammar",
    "structured_outputs",
)
# OpenAI's defaults, so that leaving a parameter out and sending its default share a key.
DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "n": 1, "presence_penalty": 0.0, "frequency_penalty": 0.0}


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(value) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def endpoint_kind(body: dict) -> str:
    """'chat' for chat completions (messages), 'completion' for legacy completions (prompt)."""
    return "chat" if "messages" in body else "completion"


def sampling_params(body: dict) -> dict:
    """The output-changing parameters of a request, with OpenAI's defaults filled in."""
    params = {k: body[k] for k in OUTPUT_PARAMS if k in body and body[k] is not None}
    for key, default in DEFAULTS.items():
        params.setdefault(key, default)
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        params[key] = float(params[key])
    return params


def is_deterministic(body: dict) -> bool:
    """True for greedy decoding of a single choice (temperature 0, or top_k 1), the cacheable case."""
    params = sampling_params(body)
    return params["n"] == 1 and (params["temperature"] == 0.0 or params.get("top_k") == 1)


def _message(msg: dict) -> dict:
    """A message reduced to the fields that reach the model."""
    keep = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call")
    return {k: msg[k] for k in keep if k in msg and msg[k] is not None}


def exact_payload(tenant: str, model: str, body: dict) -> dict:
    """Everything the exact key covers, before canonical JSON and hashing."""
    return {
        "tenant": tenant,
        "model": model,
        "kind": endpoint_kind(body),
        "input": [_message(m) for m in body.get("messages") or []] if "messages" in body else body.get("prompt"),
        "params": sampling_params(body),
    }


def exact_key(tenant: str, model: str, body: dict) -> str:
    """Hex digest identifying the request exactly, within a tenant and model scope."""
    return _digest(exact_payload(tenant, model, body))


def _text_of(content) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(content):  # images or audio: not comparable as text
            return "\n".join(parts)
    return None


def semantic_text(body: dict) -> str | None:
    """The text that semantic lookup compares: the last user message, or a single string prompt.

    None when the request is not semantically cacheable (the last message is not the user's,
    non-text content, several prompts).
    """
    if "messages" in body:
        messages = body.get("messages") or []
        if not messages or messages[-1].get("role") != "user":
            return None
        return _text_of(messages[-1].get("content"))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else None


def partition_key(tenant: str, model: str, body: dict) -> str:
    """Hex digest of everything but the compared text: the semantic index partition."""
    context = [_message(m) for m in (body.get("messages") or [])[:-1]] if "messages" in body else None
    payload = {
        "tenant": tenant,
        "model": model,
        "kind": endpoint_kind(body),
        "context": context,
        "params": sampling_params(body),
    }
    return _digest(payload)
