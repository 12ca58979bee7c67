"""Pure routing policy: answer confidence from logprobs, context-window refusals, and complexity routing.

Nothing here does I/O; every function is table-tested. A complexity classifier is any function
``(body: dict) -> float in [0, 1]``; register more in ``CLASSIFIERS`` or name one as
``module:function`` with ``tokenfleet router --classifier``.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass
from typing import Callable

Classifier = Callable[[dict], float]

# --------------------------------------------------------------------------- confidence


def token_logprobs(choice: dict) -> list[float]:
    """The sampled tokens' log-probabilities of one choice, chat or legacy completions format."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return []
    content = logprobs.get("content")
    if isinstance(content, list):  # chat: [{"token", "logprob", ...}]
        return [float(t["logprob"]) for t in content if isinstance(t, dict) and t.get("logprob") is not None]
    values = logprobs.get("token_logprobs")  # completions: parallel lists
    if isinstance(values, list):
        return [float(v) for v in values if v is not None]
    return []


def confidence(values: list[float], method: str = "mean-logprob") -> float | None:
    """Mean (or min) token log-probability; None when there are no tokens to judge."""
    finite = [v if math.isfinite(v) else -100.0 for v in values]
    if not finite:
        return None
    if method == "min-logprob":
        return min(finite)
    return sum(finite) / len(finite)


def is_confident(score: float | None, threshold: float) -> bool:
    """An answer with nothing to judge is accepted; otherwise its score must reach the threshold."""
    return score is None or score >= threshold


# --------------------------------------------------------------------------- refusals

# vLLM's wordings when a request does not fit the model's context window (all answered 400):
#   "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens ..."
#   "'max_tokens' or 'max_completion_tokens' is too large: 900. This model's maximum context length is ..."
#   "The decoder prompt (length 9000) is longer than the maximum model length of 8192. ..."
_CONTEXT_WINDOW = re.compile(r"maximum (context|model) length", re.IGNORECASE)


def exceeds_context_window(status: int, body: bytes) -> bool:
    """A tier's answer says the request does not fit its context window: a tier with a longer one may
    take it. Only a 400 counts; any other refusal (and a 400 for anything else) is the client's to see."""
    if status != 400:
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    if not isinstance(parsed, dict):
        return False
    error = parsed.get("error")  # OpenAI's shape; older vLLM releases answer it flat
    message = error.get("message") if isinstance(error, dict) else parsed.get("message")
    return isinstance(message, str) and _CONTEXT_WINDOW.search(message) is not None


# --------------------------------------------------------------------------- complexity

# These patterns resemble the engine emulator's difficulty estimate (engine/text.py) but must stay
# separate: the emulator stands in for the models the router is tested against, and a shared
# classifier would let the cascade and complexity tests pass by agreeing with themselves.

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+[(:]|\bfunction\s*\w*\(|#include\b|\bimport \w+|\bSELECT\b.+\bFROM\b|"
    r"=>|\breturn\b.*;|\bpublic static\b|\bfn \w+\(|\bconsole\.log\b|\bstack trace\b|\bTraceback\b",
    re.IGNORECASE | re.DOTALL,
)
_MATH = re.compile(
    r"\d+\s*[-+*/^=]\s*\d+|\\(frac|int|sum|sqrt)|\b(integral|derivative|equation|theorem|prove|proof|"
    r"probability|matrix|eigen\w*|polynomial|solve for|calculate|compute)\b",
    re.IGNORECASE,
)
_STEPS = re.compile(
    r"\bstep[- ]by[- ]step\b|\b(first|then|finally|afterwards)\b.*\b(then|finally|next)\b|\bexplain why\b|"
    r"\b(compare|analy[sz]e|design|plan|evaluate|trade-?offs?|justify|derive)\b|^\s*\d+[.)]\s",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Features:
    """What the heuristic classifier looks at in a request."""

    chars: int  # prompt length in characters, all messages
    code: bool
    math: bool
    multi_step: bool
    turns: int  # user messages in the conversation
    max_tokens: int | None


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def extract_features(body: dict) -> Features:
    """Features of a chat or completions request body."""
    if isinstance(body.get("messages"), list):
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        text = "\n".join(_text(m.get("content")) for m in messages)
        turns = sum(1 for m in messages if m.get("role") == "user")
    else:
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else "\n".join(p for p in prompt or [] if isinstance(p, str))
        turns = 1
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return Features(
        chars=len(text),
        code=bool(_CODE.search(text)),
        math=bool(_MATH.search(text)),
        multi_step=bool(_STEPS.search(text)),
        turns=turns,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
    )


def heuristic_score(f: Features) -> float:
    """Complexity in [0, 1]: a weighted sum of the features, each saturating."""
    length = min(max(math.log10(max(f.chars, 1) / 200), 0) / math.log10(40), 1.0)  # 200 chars: 0, 8000: 1
    depth = min(max(f.turns - 1, 0) / 7, 1.0)  # 8 user turns: 1
    budget = min(max(math.log2((f.max_tokens or 256) / 256), 0) / 3, 1.0)  # 2048 tokens: 1
    score = 0.30 * length + 0.30 * f.code + 0.30 * f.math + 0.25 * f.multi_step + 0.15 * depth + 0.15 * budget
    return round(min(score, 1.0), 4)


def heuristic(body: dict) -> float:
    """The default classifier: request features -> complexity in [0, 1]."""
    return heuristic_score(extract_features(body))


CLASSIFIERS: dict[str, Classifier] = {"heuristic": heuristic}


def load_classifier(name: str) -> Classifier:
    """A registered classifier by name, or ``module:function`` imported."""
    if name in CLASSIFIERS:
        return CLASSIFIERS[name]
    module, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"unknown classifier {name!r}: use one of {sorted(CLASSIFIERS)} or module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"classifier {name!r}: {err}") from None
    if not callable(fn):
        raise ValueError(f"classifier {name!r} is not callable")
    return fn


def start_tier(score: float, boundaries: list[float], tiers: int) -> int:
    """Index of the starting tier: how many boundaries the score reaches, capped at the last tier."""
    passed = sum(1 for b in boundaries if score >= b)
    return max(0, min(passed, tiers - 1))
