"""Invalidations that routers follow: each cache replica numbers the ones it applies; routers drop
their in-process copies of the matching answers.

The router's in-process LRU answers repeats without asking the cache service, so an entry
removed by ``POST /v1/invalidate`` would otherwise be served from there until its TTL. Each
cache replica keeps the last ``size`` invalidations it applied (its own and those other
replicas announced through Redis) under a random instance id and a sequence number;
``GET /v1/invalidations`` answers what a router has not seen yet. A router polls through the
Service, so it may reach any replica: it keeps one cursor per replica instance, drops what a
replica lists past its cursor, and drops everything when a replica's log no longer reaches
back to its cursor. Pure, no I/O: the cache app and the router's poller call these.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field

Scope = tuple[str | None, str | None]  # (tenant, model); None matches every value


@dataclass
class InvalidationLog:
    """The invalidations one cache replica applied, numbered from 1, the last ``size`` kept."""

    size: int = 1024
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0
    events: deque = field(default_factory=deque)  # (seq, tenant, model)

    def add(self, tenant: str | None, model: str | None) -> None:
        self.seq += 1
        self.events.append((self.seq, tenant, model))
        while len(self.events) > self.size:
            self.events.popleft()

    def since(self, after: int | None) -> dict:
        """The answer to a follower whose cursor here is ``after`` (None: it never read this replica).

        ``complete`` is False when invalidations it has not seen were dropped from the log: it must
        then drop everything it holds.
        """
        if after is not None and after > self.seq:
            after = None  # not a cursor of this log
        oldest = self.events[0][0] if self.events else self.seq + 1
        complete = oldest <= (after if after is not None else 0) + 1
        events = [{"tenant": t, "model": m} for s, t, m in self.events if after is None or s > after]
        return {"instance": self.instance, "seq": self.seq, "complete": complete, "events": events}


@dataclass
class Follower:
    """A router's cursors over the cache replicas' logs."""

    cursors: dict[str, int] = field(default_factory=dict)  # instance -> last seq applied
    most: int = 16  # replicas remembered (restarted replicas get new ids)

    def query(self) -> list[tuple[str, str]]:
        """Query parameters of the next poll: ``after=<instance>:<seq>`` for every known replica."""
        return [("after", f"{instance}:{seq}") for instance, seq in self.cursors.items()]

    def follow(self, answer: dict) -> list[Scope] | None:
        """What to drop for one answer of ``/v1/invalidations``: a list of (tenant, model) scopes, or
        None for everything. Raises ValueError on an answer that is not the log's shape."""
        instance, seq, events = answer.get("instance"), answer.get("seq"), answer.get("events")
        if not isinstance(instance, str) or not isinstance(seq, int) or not isinstance(events, list):
            raise ValueError("not an invalidation log")
        scopes = [(_name(e, "tenant"), _name(e, "model")) for e in events]
        self.cursors.pop(instance, None)
        self.cursors[instance] = seq  # newest last: the oldest is forgotten first
        while len(self.cursors) > self.most:
            self.cursors.pop(next(iter(self.cursors)))
        return scopes if answer.get("complete") is True else None

    @staticmethod
    def parse_after(values: list[str]) -> dict[str, int]:
        """The cache side of ``query``: {instance: seq} from ``after`` parameters (malformed ones ignored)."""
        out = {}
        for value in values:
            instance, _, seq = value.rpartition(":")
            if instance and seq.isdigit():
                out[instance] = int(seq)
        return out


def _name(event, key: str) -> str | None:
    value = event.get(key) if isinstance(event, dict) else None
    if value is not None and not isinstance(value, str):
        raise ValueError(f"invalidation {key} is not a string")
    return value


def matches(scope: Scope, tenant: str, model: str) -> bool:
    """Does an invalidation of ``scope`` cover an entry of this tenant and model?"""
    return (scope[0] is None or scope[0] == tenant) and (scope[1] is None or scope[1] == model)
