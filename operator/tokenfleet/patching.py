"""Pure: the smallest JSON merge patch (RFC 7386) that makes a live object match what the operator sets.

Only the fields the operator sets are compared, so the API server's defaults (``protocol: TCP``,
``clusterIP``, ``terminationMessagePath`` ...) and other actors' fields never cause a write.
Fields the operator set last time and no longer sets are removed (a three-way merge, like
``kubectl apply``). When nothing differs the answer is None: no write at all.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()
_SAME = object()


def scalar_equal(desired: Any, live: Any) -> bool:
    """Equal, or the same quantity written as a number and as a string (the API serves ``1`` as ``"1"``)."""
    if desired == live and type(desired) is type(live):
        return True
    numeric = (int, float)
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, numeric) and isinstance(live, numeric):
        return desired == live
    if isinstance(desired, (str, *numeric)) and isinstance(live, (str, *numeric)):
        return str(desired) == str(live)
    return False


def covers(desired: Any, live: Any) -> bool:
    """Whether ``live`` holds every field ``desired`` sets, with the same values."""
    return _diff(desired, live, None) is _SAME


def _diff_dict(desired: dict, live: Any, last: Any) -> Any:
    if not isinstance(live, dict):
        return desired
    patch: dict = {}
    for key, value in desired.items():
        sub = _diff(value, live.get(key, _MISSING), last.get(key) if isinstance(last, dict) else None)
        if sub is not _SAME:
            patch[key] = sub
    if isinstance(last, dict):
        for key in last:
            if key not in desired and key in live:
                patch[key] = None  # set last time, no longer wanted: remove
    return patch or _SAME


def _diff(desired: Any, live: Any, last: Any) -> Any:
    if desired is None:
        return _SAME  # the operator does not set this field
    if isinstance(desired, dict):
        return _diff_dict(desired, live, last)
    if isinstance(desired, list):
        if isinstance(last, list) and last != desired:
            return desired  # our intent for the list changed (an element lost a field, say): replace it
        same = (isinstance(live, list) and len(live) == len(desired)
                and all(covers(d, item) for d, item in zip(desired, live)))
        return _SAME if same else desired  # merge patches replace lists whole
    if live is _MISSING:
        return desired
    return _SAME if scalar_equal(desired, live) else desired


def merge_patch(desired: dict, live: dict, last: dict | None = None) -> dict | None:
    """The merge patch that brings ``live`` to ``desired`` (given what was ``last`` applied), or None."""
    patch = _diff(desired, live, last)
    return None if patch is _SAME else patch
