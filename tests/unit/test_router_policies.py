"""Pure routing policy: confidence from logprobs, the complexity function's table, starting tiers."""

from __future__ import annotations

import json
import math

import pytest

from tokenfleet.router.policies import (
    Features, confidence, exceeds_context_window, extract_features, heuristic, heuristic_score, is_confident,
    load_classifier, start_tier, token_logprobs,
)


@pytest.mark.parametrize("values, method, expected", [
    ([-0.1, -0.3], "mean-logprob", -0.2),
    ([-0.1, -0.3], "min-logprob", -0.3),
    ([], "mean-logprob", None),
    ([-0.5, -math.inf], "mean-logprob", -50.25),  # -inf counts as a very unlikely token, not a crash
])
def test_confidence_is_the_mean_or_min_token_logprob(values, method, expected):
    assert confidence(values, method) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("score, threshold, confident", [
    (-0.2, -0.7, True), (-0.7, -0.7, True), (-0.71, -0.7, False), (None, -0.7, True),
])
def test_an_answer_is_confident_at_or_above_the_threshold(score, threshold, confident):
    assert is_confident(score, threshold) is confident


def _error(message: str, flat: bool = False) -> bytes:
    inner = {"message": message, "type": "BadRequestError", "param": None, "code": 400}
    return json.dumps({**inner, "object": "error"} if flat else {"error": inner}).encode()


@pytest.mark.parametrize("status, body, passes", [
    # vLLM's wordings, OpenAI's error shape and the older flat one
    (400, _error("This model's maximum context length is 8192 tokens. However, your request has 9000 input "
                 "tokens. Please reduce the length of the input messages."), True),
    (400, _error("'max_tokens' or 'max_completion_tokens' is too large: 900. This model's maximum context "
                 "length is 4096 tokens and your request has 3500 input tokens (900 > 4096 - 3500)."), True),
    (400, _error("The decoder prompt (length 9000) is longer than the maximum model length of 8192.", flat=True),
     True),
    # anything else stays the client's: other 400s, other statuses, bodies that are not errors
    (400, _error("temperature must be non-negative"), False),
    (422, _error("This model's maximum context length is 8192 tokens."), False),
    (413, b"request entity too large", False),
    (400, b"maximum context length, but not JSON", False),
    (400, b'["maximum context length"]', False),
    (400, b'{"error": "maximum context length"}', False),
])
def test_only_a_context_window_refusal_passes_to_the_next_tier(status, body, passes):
    assert exceeds_context_window(status, body) is passes


@pytest.mark.parametrize("choice, expected", [
    ({"logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.5}]}}, [-0.5, -1.5]),
    ({"logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.25, None]}}, [-0.25]),
    ({"logprobs": None}, []),
    ({}, []),
])
def test_token_logprobs_read_chat_and_completions_shapes(choice, expected):
    assert token_logprobs(choice) == expected


def chat(*contents: str, max_tokens: int | None = None) -> dict:
    body = {"messages": [{"role": "user", "content": c} for c in contents]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return body


CODE = "Why does this fail?\n```python\ndef f(x):\n    return x +\n```"
MATH = "Compute the derivative of x^3 + 2x and solve for x where it equals 0."
STEPS = "Compare Postgres and MySQL for our workload, explain why, and plan the migration step by step."
LONG = "Summarize this report. " + "The quarterly numbers were in line with expectations. " * 150


# (case, body, tier index with boundaries [0.35, 0.7] over three tiers)
COMPLEXITY_TABLE = [
    ("a greeting", chat("Hi! How are you?"), 0),
    ("a short factual question", chat("What is the capital of France?"), 0),
    ("code", chat(CODE), 0),
    ("math", chat(MATH), 0),
    ("multi-step wording", chat(STEPS), 0),
    ("code and math", chat(CODE + "\n" + MATH), 1),
    ("math with multi-step wording", chat(MATH + " Explain why, step by step."), 1),
    ("a long document", chat(LONG), 0),
    ("a long document, multi-step, long answer", chat(LONG + STEPS, max_tokens=2048), 2),
    ("a long document, multi-step", chat(LONG + STEPS), 1),
    ("code, math and steps", chat(CODE + MATH + STEPS), 2),
    ("deep conversation with code and math", chat(*["and then?"] * 9, CODE + MATH, max_tokens=4096), 2),
    ("completions prompt", {"prompt": "def add(a, b):\n    return a + b;"}, 0),
]


@pytest.mark.parametrize("case, body, tier", COMPLEXITY_TABLE, ids=[c[0] for c in COMPLEXITY_TABLE])
def test_complexity_routing_table(case, body, tier):
    assert start_tier(heuristic(body), [0.35, 0.7], 3) == tier


def test_features_are_read_from_the_request():
    f = extract_features(chat("first", "second " + CODE, max_tokens=300))
    assert f == Features(chars=len("first\nsecond " + CODE), code=True, math=False, multi_step=False, turns=2,
                         max_tokens=300)


@pytest.mark.parametrize("features, low, high", [
    (Features(0, False, False, False, 1, None), 0.0, 0.0),
    (Features(100_000, True, True, True, 50, 100_000), 1.0, 1.0),
    (Features(8000, False, False, False, 1, None), 0.29, 0.31),
])
def test_heuristic_score_stays_in_zero_one(features, low, high):
    assert low <= heuristic_score(features) <= high


@pytest.mark.parametrize("score, boundaries, tiers, expected", [
    (0.1, [0.35, 0.7], 3, 0), (0.35, [0.35, 0.7], 3, 1), (0.9, [0.35, 0.7], 3, 2),
    (0.9, [0.35, 0.7], 2, 1), (0.9, [], 3, 0), (0.5, [0.35, 0.7], 1, 0),
])
def test_start_tier_counts_the_boundaries_reached(score, boundaries, tiers, expected):
    assert start_tier(score, boundaries, tiers) == expected


def test_classifiers_are_pluggable_by_name_or_import_path():
    assert load_classifier("heuristic") is heuristic
    assert load_classifier("math:fabs")(-0.5) == 0.5
    with pytest.raises(ValueError, match="unknown classifier"):
        load_classifier("magic")
    with pytest.raises(ValueError, match="nosuchmodule"):
        load_classifier("nosuchmodule:f")
