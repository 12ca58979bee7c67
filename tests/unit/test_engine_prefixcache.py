"""The emulator's model of vLLM's automatic prefix caching."""

from __future__ import annotations

from tokenfleet.engine import text
from tokenfleet.engine.prefixcache import PrefixCache

SYSTEM = "You are a helpful assistant for a shop that sells bicycles and spare parts. " * 4


def test_prompts_sharing_leading_blocks_hit_the_cache():
    cache = PrefixCache(capacity_blocks=1000, block_size=16)
    assert cache.match(SYSTEM + "Where is my order?") == 0
    hit = cache.match(SYSTEM + "Do you sell helmets?")
    assert hit > 0 and hit % 16 == 0
    assert hit <= text.count_tokens(SYSTEM) < hit + 16
    assert cache.match("Different start entirely. " + SYSTEM) == 0


def test_a_repeated_prompt_hits_every_full_block():
    cache = PrefixCache(capacity_blocks=1000, block_size=16)
    prompt = SYSTEM + "Where is my order?"
    cache.match(prompt)
    assert cache.match(prompt) == text.count_tokens(prompt) // 16 * 16


def test_the_least_recently_used_blocks_are_evicted_at_capacity():
    cache = PrefixCache(capacity_blocks=4, block_size=16)
    first = "alpha beta gamma delta " * 16  # 64 tokens: 4 blocks
    cache.match(first)
    cache.match("omega " * 64)  # 4 other blocks push the first prompt out
    assert cache.match(first) == 0
