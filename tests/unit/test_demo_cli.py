"""``tokenfleet demo``'s flags: bad values are refused before anything starts."""

from __future__ import annotations

import pytest

from tokenfleet.cli import main


@pytest.mark.parametrize("flag", ["--duration", "--rps"])
def test_demo_refuses_a_non_positive_duration_or_rate(capsys, flag):
    assert main(["demo", flag, "0", "--no-report-open"]) == 2
    assert f"{flag} must be > 0" in capsys.readouterr().err
