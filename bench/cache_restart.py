"""Cache restart benchmark (not in CI): how soon a replica with Redis is ready, and when its semantic layer is whole.

    python bench/cache_restart.py --entries 100000

A real redis-server is filled with N entries in one partition (vectors drawn like bench/cache.py's
filler: a Gaussian with the mean and covariance of real sentence vectors), through the service's own
RedisStore. Then a CacheService starts against it in this process, with the real embedding model
and the index threads the machine has, and the benchmark records: seconds until ready (every entry
read: the exact layer is whole), seconds until every vector is in the index (the semantic layer is
whole), and how late a 10 ms timer on the event loop ran meanwhile (what a lookup would have waited).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cache import embed_all, filler, load_pairs  # noqa: E402

from tests.integration.cache.conftest import redis_server  # noqa: E402
from tokenfleet.cache.embed import Embedder  # noqa: E402
from tokenfleet.cache.service import CacheService  # noqa: E402
from tokenfleet.cache.settings import CacheSettings  # noqa: E402
from tokenfleet.cache.store import Record, RedisStore  # noqa: E402


async def fill(url: str, vectors: np.ndarray) -> float:
    """Write one entry per vector through RedisStore.save, 32 at a time; returns seconds taken."""
    store, now, started = RedisStore(url, max_queued=1 << 30), time.time(), time.perf_counter()
    for start in range(0, len(vectors), 1000):
        await asyncio.gather(*(store.save(Record(
            key=f"k{i}", tenant="bench", model="m", partition="p", text=f"filler question {i}", created=now,
            exact_expires=now + 3600, semantic_expires=now + 86400, response=b'{"cached":true}', vector=vectors[i]))
            for i in range(start, min(start + 1000, len(vectors)))))
    await store.close()
    return time.perf_counter() - started


async def lateness(samples: list[float], stop: asyncio.Event) -> None:
    """How late a 10 ms sleep wakes up: the event loop's stalls."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        samples.append(loop.time() - before - 0.01)


async def restart(url: str, embedder: Embedder, entries: int) -> dict:
    service, samples, stop = CacheService(CacheSettings(redis_url=url), embedder=embedder), [], asyncio.Event()
    started = time.perf_counter()
    await service.start()
    timer = asyncio.ensure_future(lateness(samples, stop))
    await service.store.synced.wait()
    ready = time.perf_counter() - started
    held_at_ready = service.core.counts()["entries"]
    while getattr(service, "vectors_pending", 0) or service.core.counts()["semantic"] < entries or \
            any(getattr(p, "busy", False) for p in service.core.partitions.values()):
        await asyncio.sleep(0.05)
    whole = time.perf_counter() - started
    stop.set()
    await timer
    await service.close()
    ms = np.array(samples) * 1000
    return {"ready_seconds": round(ready, 1), "entries_at_ready": held_at_ready,
            "semantic_whole_seconds": round(whole, 1),
            "loop_stall_ms": {"p50": round(float(np.percentile(ms, 50)), 1),
                              "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1)},
            "index_threads": getattr(service.settings, "index_threads", os.cpu_count())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="entries written to Redis (default 100000)")
    args = parser.parse_args()
    embedder = Embedder(threads=1, precision="int8")
    pairs = load_pairs()
    real = embed_all(embedder, sorted({t for _, a, b in pairs for t in (a, b)}))
    vectors = filler(np.vstack(list(real.values())), args.entries)
    result = {"command": "python bench/cache_restart.py " + " ".join(sys.argv[1:]), "cpu": os.cpu_count(),
              "entries": args.entries, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as url:
        result["fill_seconds"] = round(asyncio.run(fill(url, vectors)), 1)
        result["restart"] = asyncio.run(restart(url, embedder, args.entries))
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
