"""In-process exact-match LRU with a time to live: the router's first cache, answered in microseconds."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, NamedTuple


class Entry(NamedTuple):
    """A cached answer: the response object and its serialized bytes (served as is)."""

    expires: float
    response: dict
    body: bytes


class LocalCache:
    """Exact key -> response, least recently used evicted past ``entries``, expired after ``ttl`` seconds."""

    def __init__(self, entries: int, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.capacity = entries
        self.ttl = ttl
        self.clock = clock
        self._items: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def get(self, key: bytes) -> Entry | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return entry

    def put(self, key: bytes, response: dict, body: bytes) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = Entry(self.clock() + self.ttl, response, body)
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
