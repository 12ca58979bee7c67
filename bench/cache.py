"""Cache benchmark (not in CI): false hits and recall on paraphrase data, lookup latency at 100k and 1M entries.

    python bench/cache.py                       # everything (about 15 minutes on 2 quiet cores)
    python bench/cache.py --sizes 100000 --no-http

Quality: SemEval STS forum pairs (../shared/data/paraphrase), score >= 4 = same meaning, <= 2 =
different. Each pair's first sentence is stored, the second is looked up, through the cache's own
core (HNSW + guard) with MiniLM vectors. The threshold is fitted on one fold and scored on the
other (two folds by a hash of the pair), so no row scores the threshold fitted on it. Baselines: a plain cosine threshold at 0.95 (vLLM production-stack default) and 0.8 (LiteLLM's
documented example) on the same vectors.

Latency: one partition holds N entries: the stored sentences (real, embedded) plus filler vectors
drawn from a Gaussian with the mean and covariance of the real sentence vectors (unit length),
inserted with 2 threads. Then the process is pinned to one core (sched_setaffinity {0}, onnxruntime
1 thread) and real query sentences are looked up one at a time through CacheService.lookup:
exact-key miss, live embedding, HNSW search, guard. Hit throughput: exact hits one at a time, and
semantic hits with 32 lookups in flight (micro-batched), on that core; with --http also exact hits
over HTTP with wrk (server on core 0, wrk on core 1). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from tokenfleet.api.v1alpha1 import CachePolicySpec  # noqa: E402
from tokenfleet.cache import guard  # noqa: E402
from tokenfleet.cache.core import CacheConfig, CacheCore  # noqa: E402
from tokenfleet.cache.embed import Embedder  # noqa: E402
from tokenfleet.cache.service import CacheService  # noqa: E402
from tokenfleet.cache.settings import CacheSettings  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "paraphrase"
FILES = ("sts2014_deft_forum.tsv", "sts2015_answers_forums.tsv")
GRID = [round(0.60 + 0.01 * i, 2) for i in range(40)]
TARGET_FHR = 0.005  # half the 1 % goal: ~190 different pairs per fold leave that much sampling error


def load_pairs() -> list[tuple[float, str, str]]:
    """(score, s1, s2) for scored pairs that are clearly the same (>= 4) or clearly different (<= 2)."""
    pairs = []
    for name in FILES:
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0].strip():
                score = float(parts[0])
                if score >= 4 or score <= 2:
                    pairs.append((score, parts[1], parts[2]))
    return pairs


def fold_of(s1: str, s2: str) -> int:
    return int(hashlib.sha256(f"{s1}\t{s2}".encode()).hexdigest(), 16) % 2


def embed_all(embedder: Embedder, texts: list[str]) -> dict[str, np.ndarray]:
    unique = sorted(set(texts))
    vectors = np.vstack([embedder.embed(unique[i:i + 64]) for i in range(0, len(unique), 64)])
    return dict(zip(unique, vectors))


def cache_decisions(cases, vectors, threshold: float, use_guard: bool) -> np.ndarray:
    """Store each cached text in its own partition, look up the query: hit or not, by the cache core."""
    core = CacheCore(CacheConfig(threshold=threshold, guard=use_guard, max_entries=10**7))
    for i, (cached, _) in enumerate(cases):
        core.put(core.new_entry(f"k{i}", "t", "m", b"{}", f"p{i}", cached), vectors[cached])
    return np.array([core.search("t", "m", f"p{i}", vectors[query], guard.features(query)).entry is not None
                     for i, (_, query) in enumerate(cases)])


def rates(hits: np.ndarray, same: np.ndarray, mask: np.ndarray) -> dict:
    return {"recall": round(float(hits[mask & same].mean()), 4),
            "false_hit_rate": round(float(hits[mask & ~same].mean()), 4), "false_hits": int(hits[mask & ~same].sum()), "same_pairs": int((mask & same).sum()),
            "different_pairs": int((mask & ~same).sum())}


def calibrate(cos: np.ndarray, ok: np.ndarray, same: np.ndarray, mask: np.ndarray, target: float) -> float:
    """Lowest grid threshold whose false-hit rate on ``mask`` is within ``target`` (most recall within it)."""
    for t in GRID:
        if ((cos >= t) & ok)[mask & ~same].mean() <= target:
            return t
    return GRID[-1]


def quality(embedder: Embedder, precision: str, target: float = TARGET_FHR) -> dict:
    """Cross-fitted recall and false-hit rate of the cache, and of plain cosine thresholds."""
    pairs = load_pairs()
    cases = [(a, b) for _, a, b in pairs]  # (stored, looked up)
    same = np.array([s >= 4 for s, _, _ in pairs])
    fold = np.array([fold_of(a, b) for _, a, b in pairs])
    vectors = embed_all(embedder, [t for c in cases for t in c])
    cos = np.array([float(vectors[a] @ vectors[b]) for a, b in cases])
    ok = np.array([guard.check(b, a) is None for a, b in cases])
    thresholds = {k: calibrate(cos, ok, same, fold == k, target) for k in (0, 1)}
    hits = np.zeros(len(cases), dtype=bool)
    for k, t in thresholds.items():  # fitted on fold k, scored on the other fold
        hits[fold != k] = cache_decisions([c for c, f in zip(cases, fold) if f != k], vectors, t, True)
    everything = np.ones(len(cases), dtype=bool)
    out = {"precision": precision, "calibration_target_fhr": target, "thresholds_fitted": {f"fold{k}": t for k, t in thresholds.items()},
           "cache_cross_fitted": rates(hits, same, everything)}
    for k in (0, 1):
        out[f"cache_scored_on_fold{1 - k}"] = rates(hits, same, fold != k)
    for t in (0.95, 0.8):
        out[f"cosine_{t}"] = rates(cos >= t, same, everything)
    mean_t = round(sum(thresholds.values()) / 2, 2)
    out[f"cosine_{mean_t}_no_guard"] = rates(cos >= mean_t, same, everything)
    out["guard_refusals_of_different_pairs_above_0.8"] = int(((cos >= 0.8) & ~ok & ~same).sum())
    out["guard_refusals_of_same_pairs_above_0.8"] = int(((cos >= 0.8) & ~ok & same).sum())
    out["pairs"] = {"same": int(same.sum()), "different": int((~same).sum())}
    return out


def filler(real: np.ndarray, n: int, seed: int = 7) -> np.ndarray:
    """``n`` unit vectors from a Gaussian with the mean and covariance of ``real``."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    cov = np.cov(real, rowvar=False) + 1e-4 * np.eye(real.shape[1])
    chol = np.linalg.cholesky(cov).astype(np.float32)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - start), real.shape[1]), dtype=np.float32)
        block = mean + z @ chol.T
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def chat(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}], "temperature": 0}


async def filled_service(embedder: Embedder, size: int, stored: list[str], vectors: dict, threshold: float):
    """A started CacheService whose one partition holds the stored texts plus filler up to ``size`` entries."""
    policy = CachePolicySpec.model_validate({"semantic": {"similarityThreshold": threshold, "maxEntries": size}})
    service = CacheService(CacheSettings(policy=policy), embedder=embedder)
    await service.start()
    core, keys = service.core, service.keys
    partition = keys.partition_key("bench", "m", chat("x"))
    entries = [core.new_entry(keys.exact_key("bench", "m", chat(t)), "bench", "m", b'{"cached":true}', partition, t)
               for t in stored]
    core.put_many(entries, np.vstack([vectors[t] for t in stored]))
    real = np.vstack(list(vectors.values()))
    for start in range(0, size - len(stored), 100_000):
        n = min(100_000, size - len(stored) - start)
        block = [core.new_entry(f"filler{start + i}", "bench", "m", b"{}", partition, f"filler question {start + i}")
                 for i in range(n)]
        core.put_many(block, filler(real, n, seed=start))
        core.run_jobs(threads=2)  # what the service's indexer does in a worker thread: merge into the HNSW part
    assert len(core.entries) == size, len(core.entries)
    return service, partition


def percentiles(seconds: list[float], cpu: list[float] | None = None) -> dict:
    """Wall-clock percentiles; with ``cpu``, also CPU-time ones (what the lookup itself used: robust to
    other processes competing for the core)."""
    ms = np.array(seconds) * 1000
    out = {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
           "mean_ms": round(float(ms.mean()), 3), "n": len(ms)}
    if cpu is not None:
        cpu_ms = np.array(cpu) * 1000
        out.update(cpu_p50_ms=round(float(np.percentile(cpu_ms, 50)), 3),
                   cpu_p99_ms=round(float(np.percentile(cpu_ms, 99)), 3))
    return out


async def timed_lookups(service: CacheService, texts: list[str], n: int) -> tuple[dict, int]:
    for text in texts[:50]:  # warm-up
        await service.lookup("bench", "m", chat(text))
    times, cpu, hits = [], [], 0
    for i in range(n):
        started, cpu_started = time.perf_counter(), time.process_time()
        hit = await service.lookup("bench", "m", chat(texts[i % len(texts)]))
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        hits += hit is not None
    return percentiles(times, cpu), hits


def parts(service: CacheService, partition: str, texts: list[str], n: int) -> dict:
    """Embedding alone and HNSW search alone, on the same queries."""
    embed_t, embed_cpu, search_t, index = [], [], [], service.core.partitions[partition]
    for i in range(n):
        started, cpu_started = time.perf_counter(), time.process_time()
        vector = service.embedder.embed([texts[i % len(texts)]])[0]
        embed_t.append(time.perf_counter() - started)
        embed_cpu.append(time.process_time() - cpu_started)
        started = time.perf_counter()
        index.search(vector, service.core.config.candidates)
        search_t.append(time.perf_counter() - started)
    return {"embedding": percentiles(embed_t, embed_cpu), "hnsw_search": percentiles(search_t)}


async def throughput(service: CacheService, exact: list[str], semantic: list[str], n: int) -> dict:
    started = time.perf_counter()
    for i in range(n):
        assert await service.lookup("bench", "m", chat(exact[i % len(exact)])) is not None
    exact_rate = n / (time.perf_counter() - started)
    gate = asyncio.Semaphore(32)

    async def one(text):
        async with gate:
            return await service.lookup("bench", "m", chat(text))

    started = time.perf_counter()
    results = await asyncio.gather(*(one(semantic[i % len(semantic)]) for i in range(n)))
    elapsed = time.perf_counter() - started
    return {"exact_hits_per_s": round(exact_rate), "semantic_lookups_per_s_32_in_flight": round(n / elapsed),
            "semantic_hit_share": round(sum(r is not None for r in results) / n, 3)}


def rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


async def measure(service: CacheService, partition: str, stored, queries, n: int) -> dict:
    lookup, hits = await timed_lookups(service, queries, n)
    hit_texts = [q for q in queries if await service.lookup("bench", "m", chat(q)) is not None]
    return {"lookup": lookup, "lookup_hit_share": round(hits / n, 3), **parts(service, partition, queries, n),
            "throughput": await throughput(service, stored, hit_texts or stored, n)}


async def latency_at(embedders: dict, size: int, stored: list[str], queries: list[str], vectors, threshold,
                     n: int) -> dict:
    """Fill with 2 threads, then measure each embedder on core 0 only, on the same index and queries."""
    cores = os.sched_getaffinity(0)
    first = next(iter(embedders.values()))
    before, started = rss_mib(), time.perf_counter()
    service, partition = await filled_service(first, size, stored, vectors, threshold)
    out = {"entries": size, "fill_seconds": round(time.perf_counter() - started, 1),
           "rss_mib_added": rss_mib() - before}
    os.sched_setaffinity(0, {min(cores)})
    try:
        for precision, embedder in embedders.items():
            service.embedder, service.batcher._embed = embedder, embedder.embed
            out[precision] = await measure(service, partition, stored, queries, n)
        out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        os.sched_setaffinity(0, cores)
        await service.close()
    return out


WRK_SCRIPT = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {body}\n'


def http_throughput(stored: str, rephrased: str, seconds: int = 5) -> dict:
    """Hits per second over HTTP: `tokenfleet cache` pinned to core 0, wrk (32 connections) on core 1."""
    import shutil
    import subprocess
    import tempfile
    import urllib.request

    from tests.support.procs import free_port, running, tokenfleet_cmd

    if not shutil.which("wrk") or len(os.sched_getaffinity(0)) < 2:
        return {"skipped": "needs wrk and 2 cores"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out, tmp = {}, Path(tempfile.mkdtemp())
    cmd = ["taskset", "-c", "0", *tokenfleet_cmd("cache", "--host", "127.0.0.1", "--port", str(port),
                                                 "--log-level", "warning")]
    with running(cmd, ready_url=base + "/readyz", timeout=60, log_path=tmp / "cache.log"):
        body = {"tenant": "bench", "model": "m", "request": chat(stored),
                "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "cached"},
                                          "finish_reason": "stop"}]}}
        urllib.request.urlopen(urllib.request.Request(base + "/v1/store", json.dumps(body).encode(),
                                                      {"Content-Type": "application/json"}), timeout=10).read()
        for kind, text in (("exact", stored), ("semantic", rephrased)):
            lookup = json.dumps({"tenant": "bench", "model": "m", "request": chat(text)})
            reply = json.loads(urllib.request.urlopen(urllib.request.Request(
                base + "/v1/lookup", lookup.encode(), {"Content-Type": "application/json"}), timeout=10).read())
            script = tmp / f"{kind}.lua"
            script.write_text(WRK_SCRIPT.format(body=json.dumps(lookup)))
            run = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script),
                                  base + "/v1/lookup"], capture_output=True, text=True, timeout=seconds + 30)
            rate = next((float(l.split()[1]) for l in run.stdout.splitlines() if l.startswith("Requests/sec")), 0.0)
            out[f"{kind}_hits_per_s"] = round(rate) if reply.get("kind") == kind else f"not a {kind} hit: {reply}"
            out[f"{kind}_non_2xx"] = "Non-2xx" in run.stdout
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="entries in the partition, comma-separated")
    parser.add_argument("--queries", type=int, default=2000, help="timed lookups per size")
    parser.add_argument("--precisions", default="int8,fp32", help="embedding precisions to measure")
    parser.add_argument("--no-http", action="store_true", help="skip the wrk run over HTTP")
    parser.add_argument("--no-latency", action="store_true", help="quality only")
    parser.add_argument("--target-fhr", type=float, default=TARGET_FHR,
                        help="false-hit rate the threshold is fitted to on the calibration fold (default 0.005)")
    args = parser.parse_args()
    embedders = {p: Embedder(threads=1, precision=p) for p in args.precisions.split(",")}
    result = {"command": "python bench/cache.py " + " ".join(sys.argv[1:]), "cpu": os.cpu_count(),
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "quality": {}}
    for precision, embedder in embedders.items():
        result["quality"][precision] = quality(embedder, precision, args.target_fhr)
        print(json.dumps({"quality": result["quality"][precision]}), flush=True)
    fitted = next(iter(result["quality"].values()))["thresholds_fitted"].values()
    threshold = round(sum(fitted) / len(fitted), 2)
    pairs = load_pairs()
    stored, queries = sorted({a for _, a, _ in pairs}), sorted({b for _, _, b in pairs})
    vectors = embed_all(next(iter(embedders.values())), stored + queries)
    result["latency"] = {"threshold": threshold}
    for size in ([] if args.no_latency else [int(s) for s in args.sizes.split(",")]):
        result["latency"][str(size)] = asyncio.run(
            latency_at(embedders, size, stored, queries, vectors, threshold, args.queries))
        print(json.dumps({str(size): result["latency"][str(size)]}), flush=True)
    if not args.no_http and not args.no_latency:
        result["http"] = http_throughput("How do I reverse a list in Python?", "How can I reverse a Python list?")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
