"""The emulator's deterministic text: token counts, answers, difficulty, capability and confidence."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

from tokenfleet.engine import text


@pytest.mark.parametrize(("sample", "count"), [
    ("", 0),
    ("Hello", 1),
    ("Hello world", 2),
    ("Hello, world!", 4),
    ("tokenization", 2),  # long words are cut into six-letter pieces
    ("12345", 2),  # digit groups of up to three
    ("  two  spaces", 4),
])
def test_token_counts(sample, count):
    assert text.count_tokens(sample) == count
    assert "".join(text.tokenize(sample)) == sample


def test_chat_prompts_count_the_template_tokens():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    assert text.chat_prompt_tokens(messages) == 1 + (5 + 3) + (5 + 2) + 4
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {}}]}]
    assert text.chat_prompt_tokens(parts) == 1 + 5 + 1 + 4


def test_answers_are_deterministic_and_depend_on_model_prompt_seed_and_length():
    answer = text.answer_tokens("m", "prompt", 1, 50)
    assert len(answer) == 50 and answer[-1] == "."
    assert text.count_tokens("".join(answer)) == 50  # what the client counts is what was generated
    assert text.answer_tokens("m", "prompt", 1, 50) == answer
    assert text.answer_tokens("other", "prompt", 1, 50) != answer
    assert text.answer_tokens("m", "prompt", 2, 50) != answer
    assert text.answer_tokens("m", "prompt 2", 1, 50) != answer


def test_answers_are_the_same_in_another_process():
    code = "from tokenfleet.engine import text; print(''.join(text.answer_tokens('m', 'p', None, 30)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other.rstrip("\n") == "".join(text.answer_tokens("m", "p", None, 30))


@pytest.mark.parametrize(("prompt", "low", "high"), [
    ("What is the capital of France?", 0.1, 0.12),
    ("[difficulty=0.8] anything", 0.8, 0.8),
    ("[DIFFICULTY=1.7] clamped", 1.0, 1.0),
    ("Write a Python function that reverses a list", 0.35, 0.37),
    ("Solve the equation 3x + 5 = 20", 0.3, 0.32),
    ("Explain step by step how to prove the theorem", 0.45, 0.47),
    ("Design a distributed cache in Python and prove its hit rate, step by step. " * 10, 0.93, 0.94),
])
def test_difficulty_comes_from_a_tag_or_the_wording(prompt, low, high):
    assert low <= text.estimate_difficulty(prompt) <= high


@pytest.mark.parametrize(("billions", "capability"), [(1, 0.35), (3, 0.493), (8, 0.621), (70, 0.903), (1000, 0.98)])
def test_capability_grows_with_model_size(billions, capability):
    assert text.capability_for_size(billions) == pytest.approx(capability, abs=0.001)


@pytest.mark.parametrize(("capability", "difficulty", "expected"), [
    (0.9, 0.0, -0.1),
    (0.9, 0.5, -0.2),
    (0.9, 0.9, -0.28),
    (1.0, 1.0, -0.3),
    (0.5, 0.6, -0.6),
    (0.5, 0.7, -0.9),
    (0.35, 0.95, -2.1),
    (0.0, 1.0, -3.3),
])
def test_mean_logprob_is_high_when_capable_and_falls_with_the_gap(capability, difficulty, expected):
    assert text.mean_logprob(capability, difficulty) == pytest.approx(expected)


def test_a_threshold_of_minus_0_7_separates_gaps_below_and_above_0_13():
    for capability in (0.2, 0.5, 0.7):
        for gap, confident in ((0.0, True), (0.1, True), (0.16, False), (0.3, False)):
            for noise in (-text.NOISE, text.NOISE):
                difficulty = capability + gap
                mean = text.mean_logprob(capability, difficulty, noise)
                assert (mean >= -0.7) == confident, (capability, gap, noise)


def test_noise_is_small_and_deterministic():
    values = [text.confidence_noise("m", f"prompt {i}", None) for i in range(200)]
    assert all(abs(v) <= text.NOISE for v in values)
    assert values == [text.confidence_noise("m", f"prompt {i}", None) for i in range(200)]
    assert statistics.pstdev(values) > text.NOISE / 4


def test_token_logprobs_average_to_the_mean_on_every_block_of_four():
    logprobs = text.token_logprobs(-0.5, 40, "key")
    assert all(lp < 0 for lp in logprobs)
    for start in range(0, 40, 4):
        assert statistics.fmean(logprobs[start:start + 4]) == pytest.approx(-0.5)
    assert len(set(logprobs)) == 4


def test_top_logprobs_put_the_chosen_token_first_and_stay_a_distribution():
    for logprob in (-0.05, -0.7, -2.5):
        tops = text.top_logprobs(" word", logprob, 5, key=3)
        assert tops[0] == (" word", logprob) and len({t for t, _ in tops}) == 5
        assert [lp for _, lp in tops] == sorted((lp for _, lp in tops), reverse=True)
        assert sum(2.718281828 ** lp for _, lp in tops) <= 1.0


@pytest.mark.parametrize(("prompt", "length"), [("[tokens=42] go", 42), ("[TOKENS=1]", 1)])
def test_a_tokens_tag_sets_the_answer_length(prompt, length):
    assert text.natural_length(prompt, 0.5) == length


def test_untagged_answer_length_is_deterministic_and_grows_with_difficulty():
    assert text.natural_length("hello", 0.0) == text.natural_length("hello", 0.0)
    assert 24 <= text.natural_length("hello", 0.0) < 88
    assert text.natural_length("hello", 1.0) == text.natural_length("hello", 0.0) + 96
