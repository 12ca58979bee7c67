"""In-process exact-match LRU with a time to live: the router's first cache, answered in microseconds."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Iterable, NamedTuple

from tokenfleet.cache.invalidations import Scope, matches


class Entry(NamedTuple):
    """A cached answer: the response object and its serialized bytes (served as is)."""

    expires: float
    response: dict
    body: bytes
    tenant: str = ""
    scope: str = ""  # the fleet or pinned tier: the cache service's "model"


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

    def put(self, key: bytes, response: dict, body: bytes, tenant: str = "", scope: str = "") -> None:
        if self.capacity <= 0:
            return
        self._items[key] = Entry(self.clock() + self.ttl, response, body, tenant, scope)
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, scopes: Iterable[Scope] | None) -> int:
        """Remove the entries an invalidation covers (``None``: all of them); how many went."""
        if scopes is None:
            removed = len(self._items)
            self._items.clear()
            return removed
        scopes = list(scopes)
        if not scopes:
            return 0
        gone = [k for k, e in self._items.items() if any(matches(s, e.tenant, e.scope) for s in scopes)]
        for key in gone:
            del self._items[key]
        return len(gone)
