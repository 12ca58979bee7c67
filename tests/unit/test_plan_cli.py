"""``tokenfleet plan`` on the command line: tables, JSON, the HTML report and clear errors."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_plan_numbers import SOLO
from tokenfleet.cli import main

CSV = ("TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
       "2023-11-16 18:15:46.6805900,1000,100\r\n"
       "2023-11-16 18:16:16.6805900,1000,100\r\n"
       "2023-11-16 18:16:46.6805900,1000,100\r\n")


@pytest.fixture
def files(tmp_path):
    fleet, trace = tmp_path / "fleet.yaml", tmp_path / "trace.csv"
    fleet.write_text(SOLO)
    trace.write_text(CSV)
    return fleet, trace, tmp_path / "plan.html"


def test_plan_prints_json_with_every_stage_and_the_break_even(files, capsys):
    fleet, trace, html = files
    code = main(["plan", "-f", str(fleet), "--trace", str(trace), "--json", "--html", str(html),
                 "--cache-hit-rate", "0.5", "--api-price-input", "10", "--api-price-output", "20"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in out["stages"]] == ["baseline", "batching", "quantization", "autoscaling",
                                                   "cascade", "cache"]
    assert out["period_seconds"] == 90.0
    assert out["stages"][0]["monthly_usd"] == pytest.approx(730.0)
    assert out["stages"][-1]["monthly_usd"] == pytest.approx(784.75)
    assert out["stages"][-1]["saving_usd"] == pytest.approx(-36.5)  # the cache service costs, saves no GPU here
    assert out["break_even"]["break_even_requests_per_day"] == pytest.approx(784.75 / 1051.2 * 2880)
    page = html.read_text()
    assert page.count("<svg") == 3 and "C_infra" in page and "<script" not in page


def test_plan_prints_tables_by_default(files, capsys):
    fleet, trace, html = files
    assert main(["plan", "-f", str(fleet), "--trace", str(trace), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "+ autoscaling" in out and "C_output" in out and "solo" in out
    assert f"report: {html}" in out


@pytest.mark.parametrize("extra, message", [
    (["--api-price-input", "1"], "both --api-price-input and --api-price-output"),
    (["--tier-shares", "0.5,0.5"], "--tier-shares has 2 values"),
    (["--fleet", "nope"], "InferenceFleet 'nope' not found"),
])
def test_plan_refuses_bad_flags_with_a_message(files, capsys, extra, message):
    fleet, trace, html = files
    code = main(["plan", "-f", str(fleet), "--trace", str(trace), "--html", str(html), *extra])
    assert code != 0
    assert message in capsys.readouterr().err


def test_plan_names_a_missing_trace_column(files, capsys, tmp_path):
    fleet, _, html = files
    bad = tmp_path / "bad.csv"
    bad.write_text("time,prompt,output\n1,2,3\n")
    assert main(["plan", "-f", str(fleet), "--trace", str(bad), "--html", str(html)]) == 1
    assert "expected TIMESTAMP, ContextTokens, GeneratedTokens" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--baseline-batch", "0", "--baseline-batch must be at least 1"),
    ("--peak-window", "0", "--peak-window must be > 0"),
    ("--small-tier-share", "1.5", "--small-tier-share must be in (0, 1]"),
])
def test_plan_refuses_assumptions_out_of_range(files, capsys, flag, value, message):
    fleet, trace, html = files
    assert main(["plan", "-f", str(fleet), "--trace", str(trace), "--html", str(html), flag, value]) == 1
    assert message in capsys.readouterr().err

