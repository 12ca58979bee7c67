"""Invalidations routers follow (cache/invalidations.py): the replica's numbered log, the router's
cursors over several replicas, and what the router's in-process LRU drops."""

from __future__ import annotations

import pytest

from tokenfleet.cache.invalidations import Follower, InvalidationLog, matches
from tokenfleet.router.localcache import LocalCache


def _log(*scopes, size: int = 1024, instance: str = "a") -> InvalidationLog:
    log = InvalidationLog(size=size, instance=instance)
    for tenant, model in scopes:
        log.add(tenant, model)
    return log


@pytest.mark.parametrize("scopes, size, after, events, complete", [
    ([], 8, None, [], True),  # nothing yet
    ([("t1", None), (None, "m")], 8, None, [("t1", None), (None, "m")], True),  # a new follower gets all
    ([("t1", None), (None, "m")], 8, 1, [(None, "m")], True),  # past its cursor only
    ([("t1", None), (None, "m")], 8, 2, [], True),  # seen everything
    ([("t1", None), (None, "m"), ("t2", "m")], 2, 1, [(None, "m"), ("t2", "m")], True),  # log still reaches back
    ([("t1", None), (None, "m"), ("t2", "m")], 2, 0, [(None, "m"), ("t2", "m")], False),  # #1 dropped: unseen
    ([("t1", None), (None, "m"), ("t2", "m")], 2, None, [(None, "m"), ("t2", "m")], False),  # new, log overflowed
    ([("t1", None)], 8, 7, [("t1", None)], True),  # a cursor past the log is not this log's: read all
])
def test_a_replica_answers_what_a_follower_has_not_seen(scopes, size, after, events, complete):
    answer = _log(*scopes, size=size).since(after)
    assert answer["instance"] == "a" and answer["seq"] == len(scopes)
    assert [(e["tenant"], e["model"]) for e in answer["events"]] == events
    assert answer["complete"] is complete


def test_a_follower_keeps_one_cursor_per_replica_and_drops_everything_on_a_gap():
    a, b = _log(("t1", None), instance="a"), _log(instance="b")
    follower = Follower()
    assert follower.query() == []
    assert follower.follow(a.since(None)) == [("t1", None)]
    assert follower.follow(b.since(None)) == []
    assert follower.query() == [("after", "a:1"), ("after", "b:0")]
    b.add(None, "chat")
    assert follower.follow(b.since(Follower.parse_after(["a:1", "b:0"])["b"])) == [(None, "chat")]
    assert follower.follow(a.since(1)) == []  # nothing new on a
    a.size = 1
    a.add("t2", None)
    a.add("t3", None)  # a dropped t2 before the follower saw it
    assert follower.follow(a.since(1)) is None  # everything must go
    assert follower.cursors == {"b": 1, "a": 3}


def test_a_follower_forgets_the_oldest_replicas_and_rejects_a_malformed_answer():
    follower = Follower(most=2)
    for name in ("a", "b", "c"):
        follower.follow(_log(instance=name).since(None))
    assert list(follower.cursors) == ["b", "c"]
    malformed = ({}, {"instance": "a", "seq": "1", "events": []},
                 {"instance": "a", "seq": 1, "events": [{"tenant": 3}]})
    for bad in malformed:
        with pytest.raises(ValueError):
            follower.follow(bad)


@pytest.mark.parametrize("values, parsed", [
    (["a:1", "b:22"], {"a": 1, "b": 22}),
    (["a:x", ":3", "nocolon", "a:-1"], {}),
    (["host:port:5"], {"host:port": 5}),
])
def test_cursors_are_parsed_leniently(values, parsed):
    assert Follower.parse_after(values) == parsed


@pytest.mark.parametrize("scope, tenant, model, covered", [
    ((None, None), "t", "m", True),
    (("t", None), "t", "m", True),
    (("u", None), "t", "m", False),
    ((None, "m"), "t", "m", True),
    (("t", "n"), "t", "m", False),
])
def test_what_an_invalidation_covers(scope, tenant, model, covered):
    assert matches(scope, tenant, model) is covered


def test_the_router_lru_drops_the_covered_entries_or_all():
    cache = LocalCache(10, ttl=60)
    for key, tenant, scope in ((b"1", "t1", "chat"), (b"2", "t2", "chat"), (b"3", "t1", "small")):
        cache.put(key, {}, b"{}", tenant, scope)
    assert cache.drop([("t1", "chat")]) == 1 and cache.get(b"1") is None and cache.get(b"3") is not None
    assert cache.drop([(None, "chat"), ("t9", None)]) == 1 and len(cache) == 1
    assert cache.drop(None) == 1 and len(cache) == 0
