"""Deterministic text for the engine emulator: token counts, answers, prompt difficulty and confidence.

Everything here is a pure function of its arguments, so that two emulators (or two runs) give the
same answer to the same (model, prompt, seed), and a cache in front of them can compare answers.

Tokens. ``tokenize`` splits text into word pieces with their leading space (`` hello``), single
punctuation marks and digit groups of up to three; words longer than eight letters are cut into
six-letter pieces. That gives ~1.2-1.3 tokens per English word, close to a BPE tokenizer.

Prompt tags (anywhere in the text the model judges, case-insensitive):

- ``[tokens=N]``: the answer is N tokens long (else a deterministic length, see ``natural_length``);
- ``[difficulty=D]``: the prompt's difficulty in [0, 1] (else ``estimate_difficulty``).

Confidence (see ``mean_logprob``): a served model has a capability in [0, 1]. When the capability
is at least the prompt's difficulty the tokens' mean logprob is ``-0.1 - 0.2 * difficulty``
(between -0.1 and -0.3); otherwise ``-0.3 - 3 * (difficulty - capability)``. A deterministic noise
in [-0.03, +0.03] is added. With a cascade threshold of -0.7 a model escalates exactly when
``difficulty - capability`` exceeds about 0.13 (0.12 to 0.14 with the noise).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re

_PIECE = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]|\s+")
TOKENS_TAG = re.compile(r"\[tokens=(\d+)\]", re.IGNORECASE)
DIFFICULTY_TAG = re.compile(r"\[difficulty=([0-9]*\.?[0-9]+)\]", re.IGNORECASE)
LONG_WORD = 8  # letters; longer words are cut into pieces of PIECE_LETTERS
PIECE_LETTERS = 6

# Chat template overhead in tokens, shaped like Llama 3's: <|begin_of_text|>, then per message
# <|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>, then the assistant header.
CHAT_BOS_TOKENS = 1
CHAT_MESSAGE_TOKENS = 5
CHAT_GENERATION_PROMPT_TOKENS = 4

NOISE = 0.03  # amplitude of the deterministic noise on the mean logprob
# Per-token logprob weights: every block of four tokens averages to exactly the mean.
_WEIGHT_BLOCK = (0.4, 0.8, 1.2, 1.6)

_WORDS = (
    "the model answers this request with a short and careful reply that covers the main points "
    "first then adds detail where it helps the reader understand each part of the problem and "
    "why the result holds in practice we consider the inputs the expected output and the edge "
    "cases so that the approach stays simple clear and correct for most uses of it while larger "
    "questions need more steps more context and a stronger model to reason about them well "
    "in short this works because each step follows from the one before and the data supports it "
    "tokens cost money so a cheaper model should answer when it can and pass harder work upward"
).split()

# The difficulty estimate below looks at the same kinds of cues as the router's complexity features
# (router/policies.py) but is written separately on purpose: the emulator plays the model the router
# is tested against, and sharing the router's classifier would test the cascade against itself.
_CODE = re.compile(
    r"```|\bdef |\bclass |\bfunction\b|\bimport |\breturn\b|[{};]\s*$|\bSELECT\b|\bcode\b|\bimplement|"
    r"\bdebug|\bcompile|\bregex|\bpython\b|\bjavascript\b|\bsql\b|\balgorithm",
    re.IGNORECASE | re.MULTILINE,
)
_MATH = re.compile(
    r"\d\s*[-+*/^=]\s*\d|\bprove\b|\bproof\b|\bintegral|\bderivative|\bequation|\bsolve\b|\bcalculate|"
    r"\bprobabilit|\btheorem|\bmatrix|\bmatrices",
    re.IGNORECASE,
)
_MULTI_STEP = re.compile(
    r"step by step|\bstep-by-step|\bfirst\b.*\bthen\b|\bexplain why\b|\bcompare\b|\banaly[sz]|"
    r"\btrade-?offs?\b|\bdesign\b|\bplan\b|\bpros and cons\b",
    re.IGNORECASE | re.DOTALL,
)


def tokenize(text: str) -> list[str]:
    """Split text into emulator tokens; ``"".join(tokenize(t)) == t``."""
    out: list[str] = []
    for piece in _PIECE.findall(text):
        letters = piece.lstrip(" ")
        if len(letters) > LONG_WORD and letters.isalpha():
            lead = piece[: len(piece) - len(letters)]
            chunks = [letters[i:i + PIECE_LETTERS] for i in range(0, len(letters), PIECE_LETTERS)]
            out.append(lead + chunks[0])
            out.extend(chunks[1:])
        else:
            out.append(piece)
    return out


@functools.lru_cache(maxsize=8192)
def count_tokens(text: str) -> int:
    """Number of emulator tokens in ``text``."""
    return len(tokenize(text))


def content_text(content) -> str:
    """The text of a chat message's content: a string or a list of parts (text parts only)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def chat_prompt_tokens(messages: list[dict]) -> int:
    """Prompt tokens of a chat request: the messages' tokens plus the chat template's."""
    body = sum(CHAT_MESSAGE_TOKENS + count_tokens(content_text(m.get("content"))) for m in messages)
    return CHAT_BOS_TOKENS + body + CHAT_GENERATION_PROMPT_TOKENS


def judged_text(messages: list[dict]) -> str:
    """The text a chat prompt is judged by (tags, difficulty): its last user message, else its last message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return content_text(messages[-1].get("content")) if messages else ""


def stable_hash(*parts) -> int:
    """A 64-bit hash of the parts that is the same in every process (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@functools.lru_cache(maxsize=8192)
def estimate_difficulty(text: str) -> float:
    """Difficulty in [0, 1] of a prompt: a ``[difficulty=D]`` tag, else an estimate from its wording.

    Estimate: 0.1, plus up to 0.25 for length (0.25 x words / 150), plus 0.25 if it looks like code,
    0.2 if it looks like math, 0.15 if it asks for several steps (step by step, compare, explain
    why, first ... then, design, plan, trade-offs); capped at 1.
    """
    tag = DIFFICULTY_TAG.search(text)
    if tag:
        return min(1.0, max(0.0, float(tag.group(1))))
    clean = TOKENS_TAG.sub("", text)
    score = 0.1 + min(0.25, 0.25 * len(clean.split()) / 150.0)
    score += 0.25 if _CODE.search(clean) else 0.0
    score += 0.2 if _MATH.search(clean) else 0.0
    score += 0.15 if _MULTI_STEP.search(clean) else 0.0
    return min(1.0, round(score, 4))


def capability_for_size(parameters_b: float) -> float:
    """Default capability of a model of this size: 0.35 + 0.3 x log10(billions), within [0.05, 0.98].

    1B -> 0.35, 3B -> 0.49, 8B -> 0.62, 70B -> 0.90, 405B and above -> 0.98.
    """
    return min(0.98, max(0.05, 0.35 + 0.3 * math.log10(max(parameters_b, 1e-3))))


def confidence_noise(model: str, prompt_key: str, seed: int | None) -> float:
    """Deterministic noise in [-NOISE, +NOISE] for one (model, prompt, seed)."""
    return ((stable_hash("noise", model, prompt_key, seed) % 20001) / 10000.0 - 1.0) * NOISE


def mean_logprob(capability: float, difficulty: float, noise: float = 0.0) -> float:
    """Mean token logprob of an answer: high when capability >= difficulty, falling with the gap."""
    if capability >= difficulty:
        base = -0.1 - 0.2 * difficulty
    else:
        base = -0.3 - 3.0 * (difficulty - capability)
    return min(-0.01, max(-8.0, base + noise))


def token_logprobs(mean: float, count: int, key: str) -> list[float]:
    """``count`` per-token logprobs around ``mean``; each block of four averages to exactly ``mean``."""
    order = random.Random(key).sample(range(4), 4)
    return [mean * _WEIGHT_BLOCK[order[(i + (i // 4)) % 4]] for i in range(count)]


def natural_length(text: str, difficulty: float) -> int:
    """Answer length in tokens: a ``[tokens=N]`` tag, else 24 + (hash % 64) + 96 x difficulty."""
    tag = TOKENS_TAG.search(text)
    if tag:
        return max(1, int(tag.group(1)))
    return 24 + stable_hash("length", text) % 64 + int(96 * difficulty)


@functools.lru_cache(maxsize=1024)
def answer_tokens(model: str, prompt_key: str, seed: int | None, length: int) -> tuple[str, ...]:
    """The answer's tokens: ``length`` of them, ending a sentence with '.'; same inputs, same tokens."""
    rng = random.Random(f"{model}\x1f{prompt_key}\x1f{seed}")
    tokens: list[str] = []
    sentence = 0
    while len(tokens) < length:
        left = length - len(tokens)
        if left == 1:
            tokens.append(".")
            break
        word = rng.choice(_WORDS)
        start = sentence == 0
        tokens.append((" " if tokens else "") + (word.capitalize() if start else word))
        sentence += 1
        if left > 2 and sentence >= 6 and rng.random() < 0.18:
            tokens.append(".")
            sentence = 0
        elif left > 2 and sentence >= 3 and rng.random() < 0.08:
            tokens.append(",")
    return tuple(tokens)


def alternatives(token: str, k: int, key: int) -> list[str]:
    """``k`` other tokens that could have come instead of ``token`` (for top_logprobs)."""
    lead = " " if token.startswith(" ") else ""
    out: list[str] = []
    i = key
    while len(out) < k:
        word = lead + _WORDS[i % len(_WORDS)]
        i += 7
        if word != token and word not in out:
            out.append(word)
    return out


def top_logprobs(token: str, logprob: float, k: int, key: int) -> list[tuple[str, float]]:
    """The ``k`` most likely tokens at one position, the chosen one first (greedy decoding)."""
    if k <= 0:
        return []
    chosen = math.exp(logprob)
    rest = max(1e-9, 1.0 - chosen)
    out = [(token, logprob)]
    for j, alt in enumerate(alternatives(token, k - 1, key), start=1):
        prob = min(rest * 0.5**j, chosen * 0.9**j)
        out.append((alt, math.log(max(prob, 1e-12))))
    return out
