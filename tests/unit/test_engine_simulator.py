"""The continuous-batching simulator: queueing, chunked prefill, KV limits, preemption, saturation."""

from __future__ import annotations

from collections import Counter

import pytest

from tokenfleet.engine.simulator import BatchSimulator, run_closed_loop
from tokenfleet.perf import build_profile

H100_8B = build_profile(parameters_b=8, gpu_type="nvidia-h100", max_num_seqs=256)


def drain(sim: BatchSimulator, limit: int = 100_000):
    """Step until idle; the step results in order."""
    results = []
    while not sim.idle and len(results) < limit:
        results.append(sim.step())
    return results


def test_an_idle_simulator_has_no_step():
    assert BatchSimulator(H100_8B).step() is None


def test_requests_beyond_max_num_seqs_wait_in_the_queue():
    sim = BatchSimulator(H100_8B, max_num_seqs=4)
    for i in range(10):
        sim.add(i, 100, 50)
    result = sim.step()
    assert (result.running, result.waiting) == (4, 6)
    assert sorted(result.admitted) == [0, 1, 2, 3]  # first come, first served


def test_a_freed_slot_is_taken_by_the_oldest_waiting_request():
    sim = BatchSimulator(H100_8B, max_num_seqs=2)
    sim.add("a", 10, 1)
    sim.add("b", 10, 5)
    sim.add("c", 10, 5)
    sim.add("d", 10, 5)
    first = sim.step()
    assert [r for r, _, _ in first.finished] == ["a"]
    assert sim.step().admitted == ["c"]


def test_each_sequence_emits_its_first_token_after_prefill_then_one_per_step():
    sim = BatchSimulator(H100_8B)
    sim.add("r", 64, 3)
    results = drain(sim)
    assert [r.tokens.get("r", 0) for r in results] == [1, 1, 1]
    assert results[0].first_tokens == ["r"] and results[0].prefill_tokens == 64
    assert results[1].decode_tokens == 1 and results[2].finished == [("r", "stop", 3)]


@pytest.mark.parametrize(("target", "max_tokens", "reason", "emitted"), [
    (5, 3, "length", 3),
    (2, 10, "stop", 2),
    (4, 4, "stop", 4),
])
def test_max_tokens_cuts_the_answer_with_finish_reason_length(target, max_tokens, reason, emitted):
    sim = BatchSimulator(H100_8B)
    sim.add("r", 20, max_tokens, target)
    finished = [f for r in drain(sim) for f in r.finished]
    assert finished == [("r", reason, emitted)]


def test_long_prompts_are_prefilled_in_chunks_within_the_token_budget():
    sim = BatchSimulator(H100_8B, max_num_batched_tokens=512)
    sim.add("long", 1500, 2)
    sim.add("short", 100, 2)
    results = drain(sim)
    assert all(r.prefill_tokens + r.decode_tokens <= 512 for r in results)
    assert [r.prefill_tokens for r in results[:3]] == [512, 512, 512]  # 'short' waits for budget left over
    first = {rid: i for i, r in enumerate(results) for rid in r.first_tokens}
    assert first["long"] == 2  # 512 + 512 + 476 tokens: ready in the third step


def test_step_time_grows_with_batch_size():
    def decode_step_ms(batch: int) -> float:
        sim = BatchSimulator(H100_8B)
        for i in range(batch):
            sim.add(i, 100, 50)
        sim.step()  # prefill
        return sim.step().duration_ms

    times = [decode_step_ms(n) for n in (1, 16, 64, 256)]
    assert times == sorted(times) and times[-1] > 1.5 * times[0]
    assert times[0] == pytest.approx(H100_8B.step_ms(1, 101))


def test_kv_capacity_limits_admission_before_max_num_seqs():
    sim = BatchSimulator(H100_8B, max_num_seqs=64, kv_capacity_tokens=1024, block_size=16)
    for i in range(8):
        sim.add(i, 300, 10)
    result = sim.step()
    assert result.running == 3 and result.waiting == 5  # 3 x 304 tokens fit in 64 blocks of 16, a 4th does not
    assert result.kv_usage > 0.8


def test_a_full_kv_cache_preempts_the_newest_sequence_which_resumes_later():
    sim = BatchSimulator(H100_8B, kv_capacity_tokens=320, block_size=16)
    sim.add("old", 100, 100)
    sim.add("new", 100, 100)
    results = drain(sim)
    preempted = [rid for r in results for rid in r.preempted]
    assert preempted and set(preempted) == {"new"}
    emitted = Counter()
    for r in results:
        emitted.update(r.tokens)
    assert emitted == {"old": 100, "new": 100}  # no token lost or repeated across the recompute
    assert sim.free_blocks == sim.total_blocks


def test_a_request_larger_than_the_kv_cache_is_refused():
    sim = BatchSimulator(H100_8B, kv_capacity_tokens=1000)
    with pytest.raises(ValueError, match="KV cache"):
        sim.add("huge", 900, 200)


def test_abort_frees_the_slot_and_the_kv_blocks():
    sim = BatchSimulator(H100_8B, max_num_seqs=1)
    sim.add("a", 100, 1000)
    sim.add("b", 100, 5)
    sim.step()
    assert sim.abort("a") and not sim.abort("a")
    assert sim.step().admitted == ["b"]
    assert sim.abort("b") and sim.idle and sim.free_blocks == sim.total_blocks


def test_throughput_grows_with_concurrency_then_saturates_at_max_num_seqs():
    def tps(concurrency: int) -> float:
        sim = BatchSimulator(H100_8B, max_num_seqs=64, max_num_batched_tokens=8192)
        return run_closed_loop(sim, concurrency=concurrency, prompt_tokens=128, output_tokens=128,
                               requests=max(2 * concurrency, 8)).output_tps

    one, sixteen, sixty_four, two_fifty_six = tps(1), tps(16), tps(64), tps(256)
    assert one < sixteen < sixty_four
    assert sixteen < 16 * one and sixty_four < 4 * sixteen  # diminishing returns: steps get longer
    assert two_fifty_six == pytest.approx(sixty_four, rel=0.05)  # beyond max-num-seqs requests only queue


def test_queued_requests_wait_longer_for_their_first_token():
    sim = BatchSimulator(H100_8B, max_num_seqs=8)
    crowded = run_closed_loop(sim, concurrency=32, prompt_tokens=128, output_tokens=64, requests=64)
    sim = BatchSimulator(H100_8B, max_num_seqs=8)
    calm = run_closed_loop(sim, concurrency=8, prompt_tokens=128, output_tokens=64, requests=64)
    assert crowded.mean_ttft_ms > 2 * calm.mean_ttft_ms
    assert crowded.output_tps == pytest.approx(calm.output_tps, rel=0.05)


def test_the_simulator_agrees_with_the_steady_state_formula():
    sim = BatchSimulator(H100_8B, max_num_batched_tokens=8192)
    result = run_closed_loop(sim, concurrency=64, prompt_tokens=128, output_tokens=128, requests=512)
    assert result.output_tps == pytest.approx(H100_8B.steady_output_tps(64, 128, 128), rel=0.05)


def test_cached_prompt_tokens_take_kv_blocks_but_no_prefill():
    cold, warm = BatchSimulator(H100_8B), BatchSimulator(H100_8B)
    cold.add("r", 2000, 2)
    warm.add("r", 2000, 2, cached_tokens=1920)
    cold_first, warm_first = cold.step(), warm.step()
    assert (cold_first.prefill_tokens, warm_first.prefill_tokens) == (2000, 80)
    assert warm_first.duration_ms < cold_first.duration_ms / 3
    assert warm.free_blocks == cold.free_blocks  # the cached prefix still occupies the KV cache


def test_a_fully_cached_prompt_still_computes_its_last_token():
    sim = BatchSimulator(H100_8B)
    sim.add("r", 64, 1, cached_tokens=64)
    assert sim.step().prefill_tokens == 1
