"""vLLM's automatic prefix caching, as the emulator models it: an LRU of hashed KV blocks.

vLLM keeps the KV blocks of finished requests until it needs the memory, and a new request
whose prompt starts with the same full blocks (hash of the block's tokens chained with the
previous block's hash) skips their prefill. The emulator keeps an LRU of block hashes as large
as the KV cache and reports, per prompt, how many leading tokens are cached.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict

from tokenfleet.engine import text


@functools.lru_cache(maxsize=4096)
def block_hashes(prompt: str, block_size: int) -> tuple[bytes, ...]:
    """Chained hashes of the prompt's full blocks of ``block_size`` tokens."""
    tokens = text.tokenize(prompt)
    out = []
    parent = b""
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hashlib.blake2b(parent + "\x1f".join(tokens[start:start + block_size]).encode(),
                                 digest_size=16).digest()
        out.append(parent)
    return tuple(out)


class PrefixCache:
    """Which prompt prefixes still have their KV blocks cached."""

    def __init__(self, capacity_blocks: int, block_size: int = 16):
        self.capacity = max(1, capacity_blocks)
        self.block_size = block_size
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def match(self, prompt: str) -> int:
        """Cached leading tokens of ``prompt``; its blocks become the most recently used."""
        hits = 0
        blocks = block_hashes(prompt, self.block_size)
        for h in blocks:
            if h not in self._blocks:
                break
            hits += 1
        for h in blocks:
            self._blocks[h] = None
            self._blocks.move_to_end(h)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return hits * self.block_size
