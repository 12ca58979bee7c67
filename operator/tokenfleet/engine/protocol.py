"""OpenAI request bodies as vLLM accepts them, turned into the sequences the emulator generates."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenfleet.engine import text


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError", 503: "ServiceUnavailableError"}

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "Error"),
                          "param": self.param, "code": self.status}}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=128)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(min_length=1)
    content: str | list | None = None


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_Common):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False


@dataclass
class Prompt:
    """One prompt of a request: how it is counted and judged."""

    key: str  # what determines the answer (with model and seed)
    judged: str  # the text read for tags and difficulty
    tokens: int
    max_tokens: int


@dataclass
class Plan:
    """A validated request: what to generate and how to answer."""

    kind: str  # "chat" or "completion"
    model: str  # the name the client asked for (echoed back)
    prompts: list[Prompt]
    n: int
    seed: int | None
    greedy: bool
    logprobs: int | None  # top-k alternatives per token; None: no logprobs
    stream: bool
    include_usage: bool
    ignore_eos: bool
    min_tokens: int
    echo: bool = False


def parse_body(raw: bytes) -> dict:
    """The JSON object of a request body, or a 400."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _validate(model_cls, body: dict):
    try:
        return model_cls.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", param=where) from None


def _max_tokens(requested: int | None, prompt_tokens: int, max_model_len: int) -> int:
    if prompt_tokens >= max_model_len:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. However, your "
                       f"request has {prompt_tokens} input tokens. Please reduce the length of the input messages.")
    if requested is None:
        return max_model_len - prompt_tokens
    if prompt_tokens + requested > max_model_len:
        raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. However, you "
                       f"requested {prompt_tokens + requested} tokens ({prompt_tokens} in the messages, {requested} "
                       "in the completion). Please reduce the length of the messages or completion.",
                       param="max_tokens")
    return requested


def _common_checks(req: _Common) -> None:
    if req.stream_options is not None and not req.stream:
        raise ApiError(400, "Stream options can only be defined when `stream=True`.", param="stream_options")


def plan_chat(body: dict, max_model_len: int) -> Plan:
    """Validate a chat completion request."""
    req = _validate(ChatRequest, body)
    _common_checks(req)
    if req.top_logprobs and not req.logprobs:
        raise ApiError(400, "when using `top_logprobs`, `logprobs` must be set to true.", param="top_logprobs")
    messages = [m.model_dump() for m in req.messages]
    tokens = text.chat_prompt_tokens(messages)
    key = json.dumps([[m["role"], text.content_text(m.get("content"))] for m in messages], ensure_ascii=False)
    requested = req.max_completion_tokens or req.max_tokens
    prompt = Prompt(key, text.judged_text(messages), tokens, _max_tokens(requested, tokens, max_model_len))
    return Plan("chat", req.model, [prompt], req.n, req.seed, req.temperature == 0,
                (req.top_logprobs or 0) if req.logprobs else None, req.stream,
                bool(req.stream_options and req.stream_options.include_usage), req.ignore_eos, req.min_tokens)


def plan_completion(body: dict, max_model_len: int) -> Plan:
    """Validate a (legacy) completion request; a list of prompts gives n choices per prompt."""
    req = _validate(CompletionRequest, body)
    _common_checks(req)
    raw = req.prompt
    if isinstance(raw, str):
        items: list = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [raw]
    else:
        items = list(raw)
    if not items:
        raise ApiError(400, "prompt: must not be empty", param="prompt")
    prompts = []
    for item in items:
        if isinstance(item, str):
            prompt_text, tokens = item, max(1, text.count_tokens(item))
        else:
            prompt_text, tokens = " ".join(str(t) for t in item), max(1, len(item))
        prompts.append(Prompt(prompt_text, prompt_text, tokens, _max_tokens(req.max_tokens, tokens, max_model_len)))
    return Plan("completion", req.model, prompts, req.n, req.seed, req.temperature == 0, req.logprobs,
                req.stream, bool(req.stream_options and req.stream_options.include_usage), req.ignore_eos,
                req.min_tokens, echo=req.echo)
