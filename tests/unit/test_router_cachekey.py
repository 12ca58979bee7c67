"""Cache keys (tokenfleet.cachekey, shared by router and cache service; the router's local_key): what enters them."""

from __future__ import annotations

import pytest

from tokenfleet import cachekey
from tokenfleet.router.core import local_key

BASE = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0}


def _with(**changes) -> dict:
    return {**BASE, **changes}


SAME = [
    ("stream flag", _with(stream=True)),
    ("stream options", _with(stream=True, stream_options={"include_usage": True})),
    ("user and metadata", _with(user="u1", metadata={"a": 1})),
    ("a parameter sent as null", _with(top_p=None)),
    ("an OpenAI default sent explicitly", _with(top_p=1, n=1, presence_penalty=0)),
    ("the integer form of a float", _with(temperature=0.0)),
    ("the request's model name (the scope is given apart)", _with(model="auto")),
    ("message fields that never reach the model", _with(messages=[{"role": "user", "content": "Hi", "x": 1}])),
]
DIFFERENT = [
    ("the message text", _with(messages=[{"role": "user", "content": "Hi!"}])),
    ("a system message", _with(messages=[{"role": "system", "content": "Be brief."}, *BASE["messages"]])),
    ("an earlier turn", _with(messages=[{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "?"},
                                        *BASE["messages"]])),
    ("temperature", _with(temperature=0.5)),
    ("max_tokens", _with(max_tokens=5)),
    ("logprobs", _with(logprobs=True)),
    ("tools", _with(tools=[{"type": "function", "function": {"name": "f"}}])),
    ("a seed", _with(seed=1)),
    ("vLLM's min_tokens", _with(min_tokens=50)),
    ("vLLM's ignore_eos", _with(ignore_eos=True)),
    ("the endpoint", {"model": "chat", "prompt": "Hi", "temperature": 0}),
]


@pytest.mark.parametrize(("case", "body"), SAME, ids=[c for c, _ in SAME])
def test_fields_that_do_not_change_the_output_leave_the_key_alone(case, body):
    assert cachekey.exact_key("t", "fleet", body) == cachekey.exact_key("t", "fleet", BASE)
    assert local_key("t", "fleet", body) == local_key("t", "fleet", BASE)


@pytest.mark.parametrize(("case", "body"), DIFFERENT, ids=[c for c, _ in DIFFERENT])
def test_anything_that_changes_the_output_changes_the_key(case, body):
    assert cachekey.exact_key("t", "fleet", body) != cachekey.exact_key("t", "fleet", BASE)
    assert local_key("t", "fleet", body) != local_key("t", "fleet", BASE)


def test_the_order_of_messages_is_part_of_the_key():
    a, b = {"role": "user", "content": "a"}, {"role": "user", "content": "b"}
    assert local_key("t", "f", _with(messages=[a, b])) != local_key("t", "f", _with(messages=[b, a]))
    assert cachekey.exact_key("t", "f", _with(messages=[a, b])) != cachekey.exact_key("t", "f", _with(messages=[b, a]))


def test_tenant_and_scope_are_part_of_every_key():
    keys = {local_key(t, s, BASE) for t in ("a", "b") for s in ("fleet", "small")}
    shared = {cachekey.exact_key(t, s, BASE) for t in ("a", "b") for s in ("fleet", "small")}
    partitions = {cachekey.partition_key(t, s, BASE) for t in ("a", "b") for s in ("fleet", "small")}
    assert len(keys) == len(shared) == len(partitions) == 4


@pytest.mark.parametrize(("body", "deterministic"), [
    ({}, False),  # OpenAI's default temperature is 1
    ({"temperature": 0}, True),
    ({"temperature": 0.0, "n": 2}, False),
    ({"temperature": 0.7, "top_k": 1}, True),
    ({"temperature": 0.7}, False),
])
def test_only_greedy_single_choice_requests_are_deterministic(body, deterministic):
    assert cachekey.is_deterministic({**body, "messages": []}) is deterministic


@pytest.mark.parametrize(("body", "text"), [
    ({"messages": [{"role": "user", "content": "What is 2+2?"}]}, "What is 2+2?"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]},
     "a\nb"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, None),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, None),
    ({"prompt": "Once upon"}, "Once upon"),
    ({"prompt": ["a", "b"]}, None),
])
def test_semantic_text_is_the_last_user_message_or_a_single_prompt(body, text):
    assert cachekey.semantic_text(body) == text


def test_the_semantic_partition_is_the_context_without_the_compared_question():
    def chat(question: str, system: str = "Be brief.") -> dict:
        return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
                "temperature": 0}

    assert cachekey.partition_key("t", "m", chat("a")) == cachekey.partition_key("t", "m", chat("b"))
    assert cachekey.partition_key("t", "m", chat("a")) != cachekey.partition_key("t", "m", chat("a", "Be long."))
    assert cachekey.partition_key("t", "m", chat("a")) != cachekey.partition_key("t", "m", {**chat("a"), "seed": 3})
