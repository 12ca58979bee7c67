"""Router benchmark (not in CI): direct vs tokenfleet's router vs LiteLLM proxy vs vLLM's Rust router, on loopback.

Everything runs on this machine in one run with one load generator (wrk, a Lua script for the
POST body) at the same concurrency: the engine emulator in --instant mode as the backend,
tokenfleet's router in pass-through (one tier, caches and coalescing off), the same router's
cache-hit path (local LRU), LiteLLM proxy and vllm-router, all started side by side. Every
target gets --rounds throughput runs (--connections), taken in turn with direct's, and one
unloaded latency run (1 connection); medians are reported, and each ratio to direct is taken
within a round, so a shared machine's changing load bears on both sides of it. Peers are looked
up in a separate virtual environment (--peers-venv or $TOKENFLEET_PEERS_VENV, default
/tmp/peers-venv); a missing peer is skipped and said so. The last line printed is the JSON
summary.

    python bench/router.py --duration 10 --connections 32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.procs import free_port, running, tokenfleet_cmd  # noqa: E402

MODEL = "bench"
MASTER_KEY = "sk-bench-master"
SAMPLED = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
           "max_tokens": 64, "temperature": 1.0}
DETERMINISTIC = {**SAMPLED, "temperature": 0.0}

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.body = '%(body)s'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"errors\\": %%d, "
    .. "\\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def wrk(url: str, body: dict, connections: int, duration: float, workdir: Path, key: str = MASTER_KEY) -> dict:
    """One wrk run against ``url``; req/s and latency percentiles in ms."""
    script = workdir / f"post-{connections}-{abs(hash(json.dumps(body)))}.lua"
    script.write_text(LUA % {"key": key, "body": json.dumps(body)})
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    raw = json.loads(line[len("RESULT "):])
    return {"rps": round(raw["requests"] / raw["seconds"], 1), "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "errors": raw["errors"],
            "requests": raw["requests"]}


def post_once(url: str, body: dict, key: str = MASTER_KEY) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return {"headers": dict(resp.headers), "body": json.load(resp)}


def peer_bin(venv: Path, name: str) -> Path | None:
    path = venv / "bin" / name
    return path if path.exists() else None


def litellm_proc(venv: Path, backend: str, port: int, workdir: Path):
    exe = peer_bin(venv, "litellm")
    if exe is None:
        return None, f"not installed in {venv} (pip install 'litellm[proxy]')"
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        f"    litellm_params: {{model: openai/{MODEL}, api_base: '{backend}/v1', api_key: sk-none}}\n"
        "litellm_settings: {drop_params: true, telemetry: false}\n"
    )
    tokenizers = next((venv / "lib").glob("python3*/site-packages/litellm/litellm_core_utils/tokenizers"), None)
    env = {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "TIKTOKEN_CACHE_DIR": str(tokenizers or ""), "DISABLE_SCHEMA_UPDATE": "True"}
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return running(cmd, ready_url=f"http://127.0.0.1:{port}/health/liveliness", timeout=180, env=env,
                   log_path=workdir / "litellm.log"), None


def vllm_router_proc(venv: Path, backend: str, port: int, workdir: Path):
    exe = peer_bin(venv, "vllm-router")
    if exe is None:
        return None, f"not installed in {venv} (pip install vllm-router)"
    cmd = [str(exe), "--host", "127.0.0.1", "--port", str(port), "--worker-urls", backend, "--policy", "round_robin"]
    return running(cmd, ready_url=f"http://127.0.0.1:{port}/v1/models", timeout=60,
                   log_path=workdir / "vllm-router.log"), None


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of processes (all their threads) and their child processes (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        total += cpu_seconds([int(c) for c in children])
    return total


def loaded(url: str, body: dict, args, workdir: Path, pids: list[int]) -> dict:
    """One throughput run at --connections; ``pids``: the process under test, whose CPU per request is reported."""
    cpu = cpu_seconds(pids)
    run = wrk(url, body, args.connections, args.duration, workdir)
    cpu = cpu_seconds(pids) - cpu
    return {**run, "cpu_us_per_request": round(cpu / max(run["requests"], 1) * 1e6, 1)}


def summarize(name: str, runs: list[dict], directs: list[dict], unloaded: dict, unloaded_direct: dict) -> dict:
    """Medians over the rounds; the ratio to direct is taken per round (same minute, same machine load)."""
    ratios = [r["rps"] / d["rps"] for r, d in zip(runs, directs) if d["rps"]]
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
    result = {key: statistics.median(r[key] for r in runs) for key in keys}
    result.update(
        errors=sum(r["errors"] for r in runs), unloaded_p50_ms=unloaded["p50_ms"], unloaded_p99_ms=unloaded["p99_ms"],
        rps_ratio_to_direct=round(statistics.median(ratios), 3) if ratios else None,
        rps_ratio_per_round=[round(x, 3) for x in ratios], rps_per_round=[r["rps"] for r in runs],
        added_p50_ms=round(statistics.median(r["p50_ms"] - d["p50_ms"] for r, d in zip(runs, directs)), 3),
        added_unloaded_p50_ms=round(unloaded["p50_ms"] - unloaded_direct["p50_ms"], 3),
    )
    print(f"{name:<22} {result['rps']:>9.1f} req/s ({result['rps_ratio_to_direct']})  p50 {result['p50_ms']:7.3f} ms"
          f"  p99 {result['p99_ms']:7.3f} ms  | 1 conn p50 {result['unloaded_p50_ms']:6.3f} ms"
          f"  | {result['cpu_us_per_request']:6.1f} us CPU/req  errors {result['errors']}", flush=True)
    return result


async def _client_cost(name: str, backend: str, total: int, concurrency: int) -> dict:
    """CPU microseconds per request spent in this process by one HTTP client, and its req/s."""
    import asyncio

    payload = json.dumps(SAMPLED).encode()
    if name == "httpx":
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency))
        call = lambda: client.post(backend + "/v1/chat/completions", content=payload,  # noqa: E731
                                   headers={"Content-Type": "application/json"})
        close = client.aclose
    elif name == "aiohttp":
        import aiohttp

        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def call():
            async with client.post(backend + "/v1/chat/completions", data=payload,
                                   headers={"Content-Type": "application/json"}) as resp:
                return await resp.read()
        close = client.close
    else:
        from tokenfleet.router.httpclient import Pool

        pool = Pool(backend + "/v1", 2, 30)

        async def call():
            return await (await pool.request(b"POST", "/chat/completions", payload)).read()

        async def close():
            pool.close()
    remaining = [total]

    async def worker():
        while remaining[0] > 0:
            remaining[0] -= 1
            await call()

    await asyncio.gather(*[worker() for _ in range(concurrency)])  # warm: connections open
    remaining[0] = total
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    return {"cpu_us_per_request": round(cpu / total * 1e6, 1), "rps": round(total / wall, 1)}


def client_costs(backend: str, total: int = 20000, concurrency: int = 32) -> dict:
    """Upstream client choice: httpx vs aiohttp vs the router's pooled httptools client, same backend."""
    import uvloop

    results = {}
    for name in ("httpx", "aiohttp", "tokenfleet-httpclient"):
        count = total // 10 if name == "httpx" else total  # httpx is an order of magnitude slower
        results[name] = uvloop.run(_client_cost(name, backend, count, concurrency))
        print(f"client {name:<22} {results[name]['cpu_us_per_request']:6.1f} us CPU/request  "
              f"{results[name]['rps']:9.1f} req/s", flush=True)
    return results


def router_cmd(backend: str, port: int, *flags: str) -> list[str]:
    return tokenfleet_cmd("router", "--host", "127.0.0.1", "--port", str(port), "--tier", f"{MODEL}={backend}", *flags)


def start_targets(stack: contextlib.ExitStack, args, backend: str, workdir: Path, skipped: dict) -> dict:
    """Every proxy under test, started side by side: name -> (url, body, pid)."""
    chat = "/v1/chat/completions"
    passthrough = ("--local-cache-entries", "0", "--no-coalescing")
    routers = [("tokenfleet", passthrough, SAMPLED), ("tokenfleet_cache_hit", (), DETERMINISTIC)]
    if args.uvicorn:
        routers.insert(1, ("tokenfleet_uvicorn", (*passthrough, "--server", "uvicorn"), SAMPLED))
    targets = {}
    for name, flags, body in routers:
        port = free_port()
        proc = stack.enter_context(running(router_cmd(backend, port, *flags), log_path=workdir / f"{name}.log",
                                           ready_url=f"http://127.0.0.1:{port}/readyz"))
        targets[name] = (f"http://127.0.0.1:{port}{chat}", body, proc.pid)
    post_once(targets["tokenfleet_cache_hit"][0], DETERMINISTIC)
    assert post_once(targets["tokenfleet_cache_hit"][0], DETERMINISTIC)["headers"]["x-tokenfleet-cache"] == "local"
    for name, starter in (("vllm_router", vllm_router_proc), ("litellm", litellm_proc)):
        port = free_port()
        proc, why = starter(Path(args.peers_venv), backend, port, workdir)
        try:
            if proc is None:
                raise RuntimeError(why)
            popen = stack.enter_context(proc)
            post_once(f"http://127.0.0.1:{port}{chat}", SAMPLED)
            targets[name] = (f"http://127.0.0.1:{port}{chat}", SAMPLED, popen.pid)
        except (RuntimeError, OSError, urllib.error.URLError) as err:
            skipped[name] = str(err)[:300]
            print(f"{name:<22} skipped: {skipped[name]}", flush=True)
    return targets


def run(args) -> dict:
    """Direct and every target in turn, ``--rounds`` times over: each ratio compares runs close in time."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-router-"))
    load_at_start = os.getloadavg()
    skipped: dict[str, str] = {}
    backend_port = free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(running(
            tokenfleet_cmd("emulate-engine", "--port", str(backend_port), "--model", MODEL, "--instant"),
            ready_url=backend + "/health", log_path=workdir / "engine.log"))
        clients = client_costs(backend) if args.clients else {}
        targets = {"direct": (backend + "/v1/chat/completions", SAMPLED, engine.pid),
                   **start_targets(stack, args, backend, workdir, skipped)}
        for url, body, _ in targets.values():  # warm-up: connection pools, caches
            wrk(url, body, args.connections, min(2.0, args.duration), workdir)
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, body, pid) in targets.items():
                runs[name].append(loaded(url, body, args, workdir, [pid]))
        unloaded = {name: wrk(url, body, 1, max(2.0, args.duration / 2), workdir)
                    for name, (url, body, _) in targets.items()}
    results = {name: summarize(name, runs[name], runs["direct"], unloaded[name], unloaded["direct"])
               for name in targets}
    return {"bench": "router", "connections": args.connections, "duration_s": args.duration, "rounds": args.rounds,
            "cores": os.cpu_count(), "load_average_start": load_at_start,
            "load_average_end": os.getloadavg(), "backend": "tokenfleet emulate-engine --instant",
            "results": results, "skipped": skipped, "upstream_clients": clients}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per loaded run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for the loaded run (default 32)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="loaded runs of every target, taken in turn; medians are reported (default 3)")
    parser.add_argument("--peers-venv", default=os.environ.get("TOKENFLEET_PEERS_VENV", "/tmp/peers-venv"),
                        help="virtual environment holding litellm and vllm-router (default $TOKENFLEET_PEERS_VENV "
                             "or /tmp/peers-venv)")
    parser.add_argument("--uvicorn", action="store_true",
                        help="also measure the router's ASGI front end under uvicorn (--server uvicorn)")
    parser.add_argument("--clients", action="store_true",
                        help="also measure upstream HTTP clients (httpx, aiohttp, the router's) against the backend")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("error: bench/router.py needs the wrk load generator on PATH (Debian: apt-get install wrk)",
              file=sys.stderr)
        return 2
    summary = run(args)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
