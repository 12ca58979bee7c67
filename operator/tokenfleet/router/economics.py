"""Token economics: output caps, default max_tokens, cost per request and the monthly budget."""

from __future__ import annotations

import calendar
import time
from typing import Callable

from tokenfleet.api.routerconfig import TierEndpoint

MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def with_default_max_tokens(body: dict, default: int | None) -> dict:
    """The body with ``max_tokens`` set to the fleet default when the request sets no limit."""
    if default is None or any(body.get(f) is not None for f in MAX_TOKEN_FIELDS):
        return body
    return {**body, "max_tokens": default}


def clamp_max_tokens(body: dict, cap: int | None) -> dict:
    """The body with every max-token field at most ``cap`` (set to it when the request sets none)."""
    if cap is None:
        return body
    present = [f for f in MAX_TOKEN_FIELDS if body.get(f) is not None]
    if not present:
        return {**body, "max_tokens": cap}
    changes = {f: cap for f in present if not isinstance(body[f], int) or body[f] > cap}
    return {**body, **changes} if changes else body


def request_cost(tier: TierEndpoint, tokens_in: int, tokens_out: int) -> float:
    """USD for one call at the tier's price per token."""
    return (tokens_in * tier.input_cost_per_million + tokens_out * tier.output_cost_per_million) / 1e6


def _month_bounds(now: float) -> tuple[float, float]:
    """Start and end (UTC timestamps) of the calendar month holding ``now``."""
    t = time.gmtime(now)
    year, month = t.tm_year, t.tm_mon
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    end = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0))
    return start, end


class Budget:
    """Spend this calendar month (UTC) against a limit; held in memory, per router replica."""

    def __init__(self, monthly_usd: float | None, on_exceeded: str = "cheapest-tier",
                 clock: Callable[[], float] = time.time):
        self.limit = monthly_usd
        self.on_exceeded = on_exceeded
        self.clock = clock
        self._bounds = _month_bounds(clock())
        self.spend = 0.0

    def _roll(self) -> None:
        now = self.clock()
        if not self._bounds[0] <= now < self._bounds[1]:  # a month boundary passed (or the clock went back)
            self._bounds, self.spend = _month_bounds(now), 0.0

    def add(self, usd: float) -> float:
        """Record spend; returns the month's total."""
        self._roll()
        self.spend += usd
        return self.spend

    def exceeded(self) -> bool:
        if self.limit is None:
            return False
        self._roll()
        return self.spend >= self.limit
