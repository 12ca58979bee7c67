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


def test_memory_stays_bounded_under_churn_in_one_partition():
    core = CacheCore(CacheConfig(max_entries=100), index_options={"flat_max": 32})
    for i in range(3000):
        put(core, f"k{i}", seed=i)
        if i % 50 == 0:
            core.run_jobs()
    core.run_jobs()
    core.sweep()
    index = core.partitions["p"]
    assert len(index) == len(core.by_label) == len(core.entries) == 100
    assert index.hnsw is not None and index.capacity() <= 4 * 100
    assert len(core._exact_queue) == 100  # evicted entries' expiry records do not pile up


def test_partitions_that_shrink_give_their_hnsw_slots_back():
    """Each partition in turn grows to most of the cache, then lives on with a few recent entries."""
    core = CacheCore(CacheConfig(max_entries=1000), index_options={"flat_max": 64})
    for p in range(12):
        for i in range(950):
            put(core, f"p{p}-{i}", partition=f"p{p}", seed=i)
            if i % 100 == 0:
                core.run_jobs()
        for q in range(p):
            put(core, f"late{p}-{q}", partition=f"p{q}", seed=q)
        core.run_jobs()
    stats = core.index_stats()
    assert core.counts()["partitions"] == 12 and len(core.entries) == 1000
    assert stats["hnsw_slots"] <= 4 * 1000  # kept at each partition's peak, it would be over 12,000
    assert stats["hnsw_partitions"] <= 2


def test_a_partition_per_conversation_costs_its_vectors_and_no_hnsw_index():
    core, _, _ = make()
    for i in range(300):
        put(core, f"k{i}", partition=f"conversation-{i}", seed=i)
    stats = core.index_stats()
    assert stats["hnsw_partitions"] == 0 and stats["hnsw_slots"] == 0
    assert stats["index_bytes"] <= 300 * (384 * 4 + 8)  # an hnswlib index costs ~2.5 MiB even for one vector
    assert core.search("t", "m", "conversation-7", unit(7), None).entry.key == "k7"


def test_entries_merged_into_hnsw_are_found_and_removed_ones_are_not():
    core = CacheCore(CacheConfig(threshold=0.99), index_options={"flat_max": 16})
    for i in range(200):
        put(core, f"k{i}", seed=i)
    assert core.run_jobs() >= 1 and core.partitions["p"].hnsw is not None
    for i in range(0, 200, 3):
        core.remove(f"k{i}")
    core.run_jobs()
    for i in range(200):
        found = core.search("t", "m", "p", unit(i), None).entry
        assert (found is None) if i % 3 == 0 else (found.key == f"k{i}"), i


def test_while_a_worker_owns_the_hnsw_part_new_entries_are_found_and_removals_wait():
    core = CacheCore(CacheConfig(threshold=0.99), index_options={"flat_max": 16})
    for i in range(40):
        put(core, f"k{i}", seed=i)
    job = core.next_job()
    assert job.kind == "merge" and core.partitions["p"].busy
    put(core, "new", seed=1000)
    core.remove("k3")
    assert core.search("t", "m", "p", unit(1000), None).entry.key == "new"  # the flat part answers meanwhile
    assert core.search("t", "m", "p", unit(5), None).entry is None  # the HNSW part is the worker's
    job.run()
    core.finish_job(job)
    assert core.search("t", "m", "p", unit(5), None).entry.key == "k5"
    assert core.search("t", "m", "p", unit(3), None).entry is None
    assert len(core.partitions["p"]) == 40


def test_while_a_worker_rebuilds_a_mostly_deleted_hnsw_part_smaller_the_old_one_answers():
    core = CacheCore(CacheConfig(threshold=0.99), index_options={"flat_max": 16})
    for i in range(200):
        put(core, f"k{i}", seed=i)
    core.run_jobs()
    for i in range(150):
        core.remove(f"k{i}")
    job = core.next_job()
    assert job.kind == "shrink" and len(job.labels) == 50
    core.remove("k199")
    assert core.search("t", "m", "p", unit(180), None).entry.key == "k180"  # read while the worker reads too
    assert core.search("t", "m", "p", unit(199), None).entry is None
    job.run()
    core.finish_job(job)
    index = core.partitions["p"]
    assert index.capacity() == 100 and len(index) == 49
    assert core.search("t", "m", "p", unit(180), None).entry.key == "k180"
    assert core.search("t", "m", "p", unit(199), None).entry is None


def test_an_invalidation_in_steps_keeps_what_was_stored_between_steps():
    core, _, _ = make()
    for i in range(10):
        put(core, f"a{i}", tenant="a", partition="pa", seed=i)
    steps = core.invalidate_steps("a", None, step=4)
    assert next(steps) == 4
    put(core, "a-new", tenant="a", partition="pa", seed=99)
    assert list(steps)[-1] == 10
    assert list(core.entries) == ["a-new"]


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
