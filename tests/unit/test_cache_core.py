"""The cache core: exact and semantic reads, TTL, capacity eviction, partitions and tenant checks (no model)."""

import numpy as np
import pytest

from tokenfleet.cache.core import CacheConfig, CacheCore


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def unit(seed: int, dim: int = 384) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make(config=None, **kw):
    clock, evictions = Clock(), []
    core = CacheCore(config or CacheConfig(**kw), clock=clock, on_evict=lambda r, n: evictions.append((r, n)))
    return core, clock, evictions


def put(core, key, text="q", tenant="t", model="m", partition="p", seed=None):
    entry = core.new_entry(key, tenant, model, b'{"a":1}', partition, text)
    return core.put(entry, unit(seed if seed is not None else hash(key) % 1000))


def test_exact_entries_are_found_only_under_their_own_tenant_and_model():
    core, _, _ = make()
    put(core, "k1")
    assert core.get_exact("k1", "t", "m").key == "k1"
    assert core.get_exact("k1", "other", "m") is None
    assert core.get_exact("k1", "t", "other") is None


def test_each_layer_expires_after_its_own_ttl_and_the_sweep_drops_the_entry_after_both():
    core, clock, evictions = make(exact_ttl=10, semantic_ttl=100)
    put(core, "k1", seed=1)
    clock.now += 11
    assert core.get_exact("k1", "t", "m") is None
    assert core.search("t", "m", "p", unit(1), None).entry.key == "k1"
    core.sweep()
    assert core.counts() == {"entries": 1, "exact": 0, "semantic": 1, "partitions": 1}
    clock.now += 90
    assert core.search("t", "m", "p", unit(1), None).entry is None
    assert core.sweep() == 1
    assert evictions == [("ttl", 1)]
    assert core.counts() == {"entries": 0, "exact": 0, "semantic": 0, "partitions": 0}


def test_beyond_max_entries_the_oldest_are_evicted_and_their_vectors_go_with_them():
    core, clock, evictions = make(max_entries=3)
    for i in range(5):
        clock.now += 1
        evicted = put(core, f"k{i}", seed=i)
    assert [e.key for e in evicted] == ["k1"]
    assert list(core.entries) == ["k2", "k3", "k4"]
    assert evictions == [("capacity", 1), ("capacity", 1)]
    assert core.search("t", "m", "p", unit(0), None).entry is None
    assert core.search("t", "m", "p", unit(4), None).entry.key == "k4"


def test_memory_stays_bounded_under_churn_because_deleted_slots_are_reused():
    core, _, _ = make(max_entries=50)
    for i in range(2000):
        put(core, f"k{i}", seed=i)
    index = core.partitions["p"]
    assert len(index) == 50
    assert index._index.get_max_elements() <= 128
    assert len(core.by_label) == 50


def test_storing_the_same_key_again_replaces_the_entry():
    core, _, _ = make()
    put(core, "k1", seed=1)
    put(core, "k1", seed=2)
    assert core.counts()["entries"] == 1 and core.counts()["semantic"] == 1
    assert core.search("t", "m", "p", unit(2), None).similarity == pytest.approx(1.0, abs=1e-5)


def test_a_vector_in_one_partition_is_never_found_from_another():
    core, _, _ = make()
    put(core, "k1", partition="p1", seed=7)
    assert core.search("t", "m", "p2", unit(7), None).entry is None
    assert core.search("t", "m", "p1", unit(7), None).entry.key == "k1"


def test_even_a_colliding_partition_key_never_hands_an_entry_to_another_tenant_or_model():
    core, _, _ = make()
    put(core, "k1", tenant="alice", partition="same", seed=3)
    assert core.search("mallory", "m", "same", unit(3), None).entry is None
    assert core.search("alice", "other-model", "same", unit(3), None).entry is None
    assert core.search("alice", "m", "same", unit(3), None).entry.key == "k1"


def test_candidates_below_the_threshold_are_not_hits():
    core, _, _ = make(threshold=0.99)
    put(core, "k1", seed=5)
    near = unit(5) + 0.2 * unit(6)
    result = core.search("t", "m", "p", near / np.linalg.norm(near), None)
    assert result.entry is None and 0.9 < result.similarity < 0.99


@pytest.mark.parametrize(("tenant", "model", "left"), [
    ("a", None, {"b1", "b2"}), (None, "m1", {"a2", "b2"}), ("a", "m1", {"a2", "b1", "b2"}), (None, None, set()),
])
def test_invalidate_removes_a_tenant_a_model_both_or_everything(tenant, model, left):
    core, _, _ = make()
    for t in ("a", "b"):
        for m in ("m1", "m2"):
            put(core, f"{t}{m[-1]}", tenant=t, model=m, partition=f"{t}{m}")
    core.invalidate(tenant, model)
    assert set(core.entries) == left
    assert core.counts()["semantic"] == len(left)


def test_disabled_layers_hold_nothing():
    core, _, _ = make(exact_enabled=False, semantic_enabled=False)
    put(core, "k1", seed=1)
    assert core.get_exact("k1", "t", "m") is None
    assert core.counts()["semantic"] == 0
