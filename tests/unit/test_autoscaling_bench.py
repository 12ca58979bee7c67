"""bench/autoscale.py's contract: the JSON line the issue asks for, and its trace variants."""

from __future__ import annotations

import importlib.util
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tokenfleet.replay import Request

BENCH = Path(__file__).resolve().parents[2] / "bench" / "autoscale.py"
KEYS = ("cost_per_mtok", "floor_cost_per_mtok", "ttft_slo_attainment", "baseline_queue_cost_per_mtok",
        "baseline_queue_slo_attainment", "baseline_static_cost_per_mtok", "reversals")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_autoscale", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_trace(path: Path, seconds: int = 360, rate: float = 1.5) -> Path:
    rng, t, t0 = random.Random(5), 0.0, datetime(2023, 11, 16, 18, 15)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    while t < seconds:
        t += rng.expovariate(rate * (3 if 120 < t < 240 else 1))  # a burst in the middle
        lines.append(f"{t0 + timedelta(seconds=t)},{rng.randint(100, 2500)},{rng.randint(20, 400)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_last_line_is_the_json_the_issue_asks_for(bench, tmp_path, capsys):
    trace = write_trace(tmp_path / "trace.csv")
    assert bench.main(["--trace", str(trace), "--startup-seconds", "30"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(KEYS) <= set(out)
    assert out["floor_cost_per_mtok"] <= out["oracle_cost_per_mtok"] and out["floor_cost_per_mtok"] <= out[
        "cost_per_mtok"]
    assert out["cost_vs_floor"] == pytest.approx(out["cost_per_mtok"] / out["floor_cost_per_mtok"], abs=1e-3)
    assert out["saving_vs_queue"] == pytest.approx(1 - out["cost_per_mtok"] / out["baseline_queue_cost_per_mtok"],
                                                   abs=1e-3)
    assert 0 <= out["ttft_slo_attainment"] <= 1 and isinstance(out["reversals"], int)


def test_trace_variants_slice_speed_up_and_overlay_the_requests(bench):
    requests = [Request(float(t), 100 + t, 10) for t in range(0, 600, 30)]  # one every 30 s for 10 minutes
    sliced = bench.reshape(requests, minutes="5:10")
    assert [r.arrival for r in sliced][:2] == [0.0, 30.0] and sliced[0].prompt_tokens == 400 and len(sliced) == 10
    assert [r.arrival for r in bench.reshape(requests, speed=2.0)][:3] == [0.0, 15.0, 30.0]
    doubled = bench.reshape(requests, copies=2)
    span = 570 + 1e-6  # the second copy starts half the span later and wraps round
    expected = sorted([r.arrival for r in requests] + [(r.arrival + span / 2) % span for r in requests])
    assert [r.arrival for r in doubled] == pytest.approx(expected)
    with pytest.raises(SystemExit, match="no requests"):
        bench.reshape(requests, minutes="20:30")
