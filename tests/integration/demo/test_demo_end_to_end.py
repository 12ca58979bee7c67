"""``tokenfleet demo`` end to end in a short mode: summary, report, clean exit, nothing left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIG_TIER = """
apiVersion: tokenfleet.io/v1alpha1
kind: ModelTier
metadata: {name: huge}
spec:
  model: {source: hf://x/y, parametersB: 400, maxModelLen: 8192}
  gpu: {type: nvidia-l4, count: 1}
---
apiVersion: tokenfleet.io/v1alpha1
kind: InferenceFleet
metadata: {name: chat}
spec: {tiers: [huge]}
"""


def survivors(workdir: Path) -> list[str]:
    """Processes whose working directory or command line lies in the demo's work directory."""
    found = []
    mark = str(workdir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(mark) or mark in cmdline:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def start(workdir: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tokenfleet", "demo", "--no-report-open", "--workdir", str(workdir), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the demo did not finish within {timeout}s:\n{out[-4000:]}")
    return out


def test_the_demo_reports_cost_against_the_baseline_and_stops_everything(tmp_path):
    workdir = tmp_path / "run"
    out = finish(start(workdir, "--duration", "10", "--rps", "6", "--startup-delay", "1"), 180)
    assert "exited" not in out, out[-4000:]
    assert re.search(r"cost per 1M tokens\s+tokenfleet \$\d+\.\d{4}\s+vs\s+baseline \$\d+\.\d{4} \(llama-70b-awq "
                     r"static x\d+, no cache\)", out), out[-4000:]
    assert re.search(r"cache hits\s+\d+% of answers: router's own copy \d+%, cache service exact \d+%, cache "
                     r"service semantic \d+%", out)
    # a repeat sent once its question's answer is back is a cache hit (min_tokens is in the key: the
    # demo must ask for the same length again, or every repeat misses)
    answered = re.search(r"had been answered: repeat (\d+)/(\d+)", out)
    assert answered and int(answered[2]) >= 1 and int(answered[1]) >= 0.8 * int(answered[2]), out[-4000:]
    assert re.search(r"answer time\s+whole answers: p50 \d+\.\d\ds, p95 \d+\.\d\ds", out)
    assert re.search(r"escalations\s+\d+% of the \d+ answers", out)
    assert "replicas        llama-1b-int4" in out
    assert "stopped every process the demo started" in out
    report = (workdir / "report.html").read_text()
    assert report.count("<svg") == 3 and "cost per 1M tokens" in report
    assert survivors(workdir) == []


def test_ctrl_c_in_the_middle_stops_every_process(tmp_path):
    workdir = tmp_path / "run"
    proc = start(workdir, "--duration", "60", "--startup-delay", "1")
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "traffic:" in line or not line:
            break
    assert any("traffic:" in line for line in lines), "".join(lines)
    time.sleep(2)
    assert survivors(workdir), "the demo should be running its processes now"
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + finish(proc, 60)
    assert proc.returncode == 130, out[-3000:]
    assert "SIGINT: stopping everything" in out and "stopped every process the demo started" in out
    assert survivors(workdir) == []


def test_a_fleet_that_cannot_start_fails_with_the_reason(tmp_path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(BIG_TIER)
    workdir = tmp_path / "run"
    proc = start(workdir, "-f", str(fleet), "--start-timeout", "8", "--no-prometheus")
    out = finish(proc, 90)
    assert proc.returncode == 1
    assert "not ready after 8s: huge-engine" in out
    assert "InsufficientGPUMemory" in out
    assert survivors(workdir) == []
