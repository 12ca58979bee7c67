"""Pure: the demo's requests, from a slice of a real trace and a set of written questions.

Arrival times and token counts come from the Azure LLM inference trace (``data/``): the slice
is compressed into ``duration`` seconds and thinned at random to ``rps`` requests per second
on average, which keeps its shape (rise, peak, fall) at a load the demo's machine can carry.
What each request says comes from ``data/prompts.json``:

- ``followup``: a turn deep in a conversation (a share ``followup_share`` of requests): the
  system prompt, earlier turns sized so that the prompt has the trace row's ContextTokens,
  then a question; sampled at temperature 0.7, so no cache may answer it;
- otherwise a first turn (system prompt + question, temperature 0) whose question is drawn
  with a Zipf popularity (exponent ``zipf``) over the questions of a level in a seeded random
  order: ``new`` when the question was not asked before, else ``rephrase`` (a wording not used
  yet, with probability ``rephrase_share``) or ``repeat`` (a wording used before).

Either way the question's level (easy, medium, hard) is drawn from ``level_mix`` first: most
requests are easy, as in real traffic (an assumption: 70% easy, 20% medium, 10% hard).

Every request asks, through vLLM's ``min_tokens``, for the trace row's GeneratedTokens: the
engine emulator has no model to decide an answer's length, the trace does. A repeat or a
rephrasing asks for the length of its question's first answer: the same question gets an answer
of the same length, and ``min_tokens`` is part of every cache key (an answer shorter than a
request's ``min_tokens`` must not serve it), so a length drawn afresh would make every repeat a
miss.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenfleet.engine.text import chat_prompt_tokens
from tokenfleet.replay import Request, load_trace

DATA = Path(__file__).parent / "data"
TRACE_SLICE = DATA / "azure_llm_2023_conv_slice.csv"
PROMPTS = DATA / "prompts.json"
KINDS = ("new", "repeat", "rephrase", "followup")
_FILLER = (
    "Thanks, that helps. Here is a short summary of what we covered so far, with the main points first "
    "and the details after them. The order shipped on Monday and the tracking link shows it in transit. "
    "For the code, the function reads the file, parses each line and keeps a running total per month. "
    "We compared both options and the second one is simpler to maintain while the first one is faster. "
    "The result depends on the inputs, so it is worth checking the edge cases before relying on it. "
    "You can change this setting in your account page under preferences and it applies at once."
).split()


@dataclass(frozen=True)
class Question:
    id: str
    level: str
    wordings: tuple[str, ...]  # the question, then its paraphrases


@dataclass(frozen=True)
class PromptSet:
    system_prompt: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class WorkloadConfig:
    """How the trace slice becomes the demo's requests (see the module docstring)."""

    duration: float = 30.0
    rps: float = 14.0
    followup_share: float = 0.5
    rephrase_share: float = 0.6
    zipf: float = 0.9
    stream_share: float = 0.2
    followup_temperature: float = 0.7
    level_mix: tuple[tuple[str, float], ...] = (("easy", 0.7), ("medium", 0.2), ("hard", 0.1))
    seed: int = 7


@dataclass(frozen=True)
class PlannedRequest:
    """One request to send ``at`` seconds after the traffic starts."""

    index: int
    at: float
    kind: str
    question: str  # Question.id
    messages: tuple[dict, ...]
    min_tokens: int
    temperature: float
    stream: bool
    trace_prompt_tokens: int


@lru_cache(maxsize=4)
def load_prompts(path: Path = PROMPTS) -> PromptSet:
    data = json.loads(Path(path).read_text())
    questions = tuple(Question(q["id"], q.get("level", ""), (q["text"], *q.get("paraphrases", ())))
                      for q in data["questions"])
    return PromptSet(data["system_prompt"], questions)


def compress(rows: list[Request], duration: float, rps: float, seed: int) -> list[Request]:
    """The rows squeezed into ``duration`` seconds, thinned at random to ``rps`` requests/s on average."""
    if not rows:
        return []
    span = max(r.arrival for r in rows) - min(r.arrival for r in rows) or 1.0
    start = min(r.arrival for r in rows)
    keep = min(1.0, rps * duration / len(rows))
    rng = random.Random(seed)
    kept = [r for r in rows if rng.random() < keep]
    return [Request((r.arrival - start) / span * duration, r.prompt_tokens, r.output_tokens) for r in kept]


def zipf_weights(n: int, exponent: float) -> list[float]:
    """Popularity of ranks 1..n: 1 / rank^exponent."""
    return [1.0 / (rank ** exponent) for rank in range(1, n + 1)]


def history(system: str, question: str, context_tokens: int, rng: random.Random,
            prompts: PromptSet) -> tuple[dict, ...]:
    """System prompt, earlier turns and ``question``, the earlier turns sized to about ``context_tokens``."""
    messages: list[dict] = [{"role": "system", "content": system}]
    last = {"role": "user", "content": question}
    while chat_prompt_tokens([*messages, last]) < context_tokens - 24:
        budget = context_tokens - chat_prompt_tokens([*messages, last])
        earlier = rng.choice(prompts.questions).wordings[0]
        words = max(4, min(160, int(budget / 1.3) - len(earlier.split()) - 12))
        answer = " ".join(rng.choice(_FILLER) for _ in range(words))
        messages += [{"role": "user", "content": earlier}, {"role": "assistant", "content": answer.capitalize() + "."}]
    return (*messages, last)


def by_level(prompts: PromptSet, rng: random.Random) -> dict[str, list[Question]]:
    """The questions of each level, in a seeded random order (popularity is independent of wording)."""
    levels: dict[str, list[Question]] = {}
    for q in prompts.questions:
        levels.setdefault(q.level, []).append(q)
    for questions in levels.values():
        rng.shuffle(questions)
    return levels


def plan_requests(rows: list[Request], prompts: PromptSet, config: WorkloadConfig) -> list[PlannedRequest]:
    """The demo's requests in arrival order (see the module docstring)."""
    rng = random.Random(config.seed)
    levels = by_level(prompts, rng)
    mix = [(level, w) for level, w in config.level_mix if levels.get(level)]
    weights = {level: zipf_weights(len(qs), config.zipf) for level, qs in levels.items()}
    asked: dict[str, list[str]] = {}
    lengths: dict[str, int] = {}  # question id -> output tokens of its first answer
    out = []
    for i, row in enumerate(compress(rows, config.duration, config.rps, config.seed)):
        stream = rng.random() < config.stream_share
        level = rng.choices([m[0] for m in mix], [m[1] for m in mix])[0]
        if rng.random() < config.followup_share:
            question = rng.choice(levels[level])
            messages = history(prompts.system_prompt, rng.choice(question.wordings), row.prompt_tokens, rng, prompts)
            out.append(PlannedRequest(i, row.arrival, "followup", question.id, messages, row.output_tokens,
                                      config.followup_temperature, stream, row.prompt_tokens))
            continue
        question = rng.choices(levels[level], weights[level])[0]
        used = asked.setdefault(question.id, [])
        unused = [w for w in question.wordings if w not in used]
        if not used:
            kind, wording = "new", question.wordings[0]
        elif unused and rng.random() < config.rephrase_share:
            kind, wording = "rephrase", unused[0]
        else:
            kind, wording = "repeat", rng.choice(used)
        if wording not in used:
            used.append(wording)
        length = lengths.setdefault(question.id, row.output_tokens)
        messages = ({"role": "system", "content": prompts.system_prompt}, {"role": "user", "content": wording})
        out.append(PlannedRequest(i, row.arrival, kind, question.id, messages, length, 0.0, stream,
                                  row.prompt_tokens))
    return out


def load_slice(path: Path = TRACE_SLICE) -> list[Request]:
    """The bundled trace slice (or any CSV in the Azure trace format)."""
    return load_trace(path)
