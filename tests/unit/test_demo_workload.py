"""The demo's traffic: trace compression, and the repeat / rephrase / follow-up / difficulty mix."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tokenfleet.cache import guard
from tokenfleet.demo import workload
from tokenfleet.demo.workload import WorkloadConfig, compress, load_prompts, load_slice, plan_requests
from tokenfleet.engine.text import capability_for_size, chat_prompt_tokens, estimate_difficulty, mean_logprob
from tokenfleet.replay import Request

REPO = Path(__file__).resolve().parents[2]
SHARED_TRACE = REPO.parent / "shared" / "data" / "traces" / "azure_llm_2023_conv.csv"
DEMO_TIERS_B = (1.24, 8.03, 70.6)  # parametersB of examples/demo/fleet.yaml, cheapest first
THRESHOLD = -0.7  # the demo fleet's cascade threshold


@pytest.fixture(scope="module")
def planned() -> list[workload.PlannedRequest]:
    return plan_requests(load_slice(), load_prompts(), WorkloadConfig())


def answering_tier(text: str) -> int:
    """The tier whose answer the cascade keeps, by the emulator's confidence rule (no noise)."""
    difficulty = estimate_difficulty(text)
    for i, size in enumerate(DEMO_TIERS_B):
        if mean_logprob(capability_for_size(size), difficulty) >= THRESHOLD:
            return i
    return len(DEMO_TIERS_B) - 1


def test_compression_keeps_the_trace_shape_at_the_asked_rate():
    rows = [Request(float(t), 100, 10) for t in range(0, 1000)] + [Request(1000 + t / 3, 100, 10) for t in range(3000)]
    out = compress(rows, duration=10.0, rps=100.0, seed=1)
    assert 900 <= len(out) <= 1100  # 100 req/s over 10 s, thinned at random
    first = sum(1 for r in out if r.arrival < 5.0)
    assert 2.3 < (len(out) - first) / first < 3.9  # the second half was three times as busy
    assert max(r.arrival for r in out) <= 10.0


def test_every_kind_of_request_appears(planned):
    kinds = collections.Counter(r.kind for r in planned)
    assert set(kinds) == set(workload.KINDS)
    assert 0.4 < kinds["followup"] / len(planned) < 0.6  # followup_share 0.5


def test_a_repeat_sends_exactly_the_messages_of_an_earlier_request(planned):
    earlier: set[tuple] = set()
    repeats = 0
    for r in planned:
        key = tuple((m["role"], m["content"]) for m in r.messages)
        if r.kind == "repeat":
            assert key in earlier
            repeats += 1
        earlier.add(key)
    assert repeats > 20


def test_repeats_and_rephrasings_ask_for_the_length_of_their_questions_first_answer(planned):
    """min_tokens is in every cache key: a length drawn afresh per repeat would make it a miss."""
    first: dict[str, int] = {}
    again = 0
    for r in planned:
        if r.kind == "new":
            first[r.question] = r.min_tokens
        elif r.kind in ("repeat", "rephrase"):
            assert r.min_tokens == first[r.question]
            again += 1
    assert again > 20 and len(set(first.values())) > 10  # new questions keep the trace's spread of lengths


def test_a_rephrase_asks_an_earlier_question_in_words_not_used_before(planned):
    asked: dict[str, set[str]] = collections.defaultdict(set)
    prompts = {q.id: q for q in load_prompts().questions}
    rephrases = 0
    for r in planned:
        text = r.messages[-1]["content"]
        if r.kind == "rephrase":
            assert asked[r.question] and text not in asked[r.question]
            assert text in prompts[r.question].wordings
            rephrases += 1
        if r.kind != "followup":
            asked[r.question].add(text)
    assert rephrases > 5


def test_first_turns_are_deterministic_and_followups_are_sampled(planned):
    for r in planned:
        if r.kind == "followup":
            assert r.temperature > 0
            assert len(r.messages) > 2 or r.trace_prompt_tokens < 500  # a short context leaves no room for turns
        else:
            assert r.temperature == 0 and [m["role"] for m in r.messages] == ["system", "user"]


def test_followups_carry_the_trace_rows_context_length(planned):
    errors = [abs(chat_prompt_tokens(list(r.messages)) - r.trace_prompt_tokens) / r.trace_prompt_tokens
              for r in planned if r.kind == "followup" and r.trace_prompt_tokens > 600]
    assert errors and sorted(errors)[len(errors) // 2] < 0.05


def test_popular_questions_come_back_more_often(planned):
    counts = collections.Counter(r.question for r in planned if r.kind != "followup")
    top = counts.most_common()
    assert top[0][1] >= 4 * top[len(top) // 2][1]  # Zipf: the head is far above the median


def test_difficulty_mix_sends_most_requests_to_the_small_tier(planned):
    tiers = collections.Counter(answering_tier(r.messages[-1]["content"]) for r in planned)
    shares = [tiers[i] / len(planned) for i in range(3)]
    assert 0.6 < shares[0] < 0.8 and 0.1 < shares[1] < 0.3 and 0.03 < shares[2] < 0.17


@pytest.mark.parametrize("level, tier", [("easy", 0), ("medium", 1), ("hard", 2)])
def test_each_level_of_the_prompt_set_needs_its_tier(level, tier):
    texts = [w for q in load_prompts().questions if q.level == level for w in q.wordings]
    right = sum(1 for t in texts if answering_tier(t) == tier)
    assert right / len(texts) > 0.95


def test_paraphrases_keep_what_the_cache_guard_checks_mostly():
    pairs = [(q.wordings[0], w) for q in load_prompts().questions for w in q.wordings[1:]]
    refused = [(a, b) for a, b in pairs if guard.compare(guard.features(b), guard.features(a)) is not None]
    assert len(pairs) > 100 and len(refused) / len(pairs) < 0.1


def test_the_bundled_trace_slice_is_verbatim_from_the_published_trace():
    data = workload.TRACE_SLICE.read_bytes()
    rows = data.split(b"\r\n")
    assert rows[0] == b"TIMESTAMP,ContextTokens,GeneratedTokens"
    assert len([r for r in rows[1:] if r]) == 11453
    if not SHARED_TRACE.exists():
        pytest.skip("the full trace is not on this machine")
    lines = SHARED_TRACE.read_bytes().split(b"\r\n")
    assert b"\r\n".join([lines[0], *lines[4425:15878]]) + b"\r\n" == data


def test_the_bundled_fleet_is_the_one_in_examples():
    bundled = Path(workload.DATA / "fleet.yaml").read_text()
    assert bundled == (REPO / "examples" / "demo" / "fleet.yaml").read_text()


def test_the_data_says_where_it_comes_from_and_its_licence():
    readme = (workload.DATA / "README.md").read_text()
    assert "CC BY 4.0" in readme and "github.com/Azure/AzurePublicDataset" in readme
    assert "Apache-2.0" in readme
