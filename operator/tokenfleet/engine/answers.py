"""What the emulated model answers to a validated request: tokens, finish reason and logprobs per choice."""

from __future__ import annotations

from dataclasses import dataclass

from tokenfleet.engine import text
from tokenfleet.engine.protocol import Plan, Prompt


@dataclass
class Choice:
    """One generated sequence of a request (prompt i, sample j -> choice index i * n + j)."""

    index: int
    prompt: Prompt
    tokens: tuple[str, ...]  # the whole output, already cut at max_tokens
    finish_reason: str  # "stop" or "length"
    target_tokens: int  # the answer's natural length (> len(tokens) when max_tokens cut it)
    logprobs: list[float] | None
    key: int  # seeds the top_logprobs alternatives

    @property
    def count(self) -> int:
        return len(self.tokens)


def build_choices(plan: Plan, model: str, capability: float, want_logprobs: bool | None = None) -> list[Choice]:
    """Every choice of ``plan`` as ``model`` (the engine's served name) with ``capability`` answers it.

    Same (model, prompt, seed) -> same tokens. With temperature 0 the n samples of a prompt are
    identical (greedy); otherwise sample j uses seed (seed, j).
    """
    with_logprobs = plan.logprobs is not None if want_logprobs is None else want_logprobs
    choices = []
    for i, prompt in enumerate(plan.prompts):
        difficulty = text.estimate_difficulty(prompt.judged)
        target = prompt.max_tokens if plan.ignore_eos else text.natural_length(prompt.judged, difficulty)
        target = max(target, plan.min_tokens, 1)
        count = min(target, prompt.max_tokens)
        for j in range(plan.n):
            seed = plan.seed if (plan.greedy or j == 0) else f"{plan.seed}/{j}"
            full = text.answer_tokens(model, prompt.key, seed, target)
            logprobs = None
            if with_logprobs:
                mean = text.mean_logprob(capability, difficulty, text.confidence_noise(model, prompt.key, seed))
                logprobs = text.token_logprobs(mean, count, f"{model}\x1f{prompt.key}\x1f{seed}")
            choices.append(Choice(i * plan.n + j, prompt, full[:count], "length" if target > count else "stop",
                                  target, logprobs, text.stable_hash(prompt.key, seed) & 0xFFFF))
    return choices
