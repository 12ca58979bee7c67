"""Fixtures of the cache service's integration tests: a real redis-server and `tokenfleet cache` processes."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time

import httpx
import pytest
import redis

from tests.support.procs import free_port, running, stop, tokenfleet_cmd


@contextlib.contextmanager
def redis_server(data_dir, port: int | None = None):
    """redis-server from Debian on a free loopback port, persisting to ``data_dir``; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
           "--appendonly", "no", "--protected-mode", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_timeout=1)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        stop(proc)


@contextlib.contextmanager
def cache_service(log_dir, *args: str, env: dict | None = None):
    """``tokenfleet cache`` with ``args``, ready (model loaded, index rebuilt); yields an httpx client on it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tokenfleet_cmd("cache", "--host", "127.0.0.1", "--port", str(port), *args)
    with running(cmd, ready_url=base + "/readyz", log_path=log_dir / f"cache-{port}.log", env=env, timeout=60), \
            httpx.Client(base_url=base, timeout=10) as client:
        yield client


@pytest.fixture
def logs(tmp_path):
    return tmp_path


def chat(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}], "temperature": 0}


def answer(content: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def store(client: httpx.Client, text: str, content: str, tenant: str = "acme") -> dict:
    r = client.post("/v1/store", json={"tenant": tenant, "model": "m", "request": chat(text),
                                       "response": answer(content)})
    r.raise_for_status()
    return r.json()


def lookup(client: httpx.Client, text: str, tenant: str = "acme") -> dict:
    r = client.post("/v1/lookup", json={"tenant": tenant, "model": "m", "request": chat(text)})
    r.raise_for_status()
    return r.json()


def eventually(check, timeout: float = 5.0):
    """Poll ``check`` until it returns a truthy value; returns it (or the last falsy one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
