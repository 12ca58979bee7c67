"""Helpers for tests and benchmarks that start real processes: free ports, readiness waits, cleanup."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"  # kubectl and helm, installed by scripts/bootstrap.sh


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until GET ``url`` answers with a status below 500; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
            last = err
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def tool(name: str) -> str | None:
    """Path of a command-line tool: .tools/bin first, then PATH."""
    local = TOOLS_BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def tokenfleet_cmd(*args: str) -> list[str]:
    """Command line that runs the tokenfleet CLI with this interpreter."""
    return [sys.executable, "-m", "tokenfleet", *args]


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; also reaps the process."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(cmd: list[str], *, ready_url: str | None = None, timeout: float = 30.0, env: dict | None = None,
            log_path: Path | None = None, cwd: str | Path | None = None):
    """Start ``cmd``, wait for ``ready_url`` if given, yield the Popen, and stop it afterwards.

    Output goes to ``log_path`` (or is discarded); on a failed start the log tail is in the error.
    """
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
    try:
        if ready_url:
            try:
                wait_http(ready_url, timeout=timeout, proc=proc)
            except (RuntimeError, TimeoutError) as err:
                tail = Path(log_path).read_text()[-3000:] if log_path else ""
                raise RuntimeError(f"{cmd[:4]}... did not start: {err}\n{tail}") from None
        yield proc
    finally:
        stop(proc)
        if log_path:
            log.close()
