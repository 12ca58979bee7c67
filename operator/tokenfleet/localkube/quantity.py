"""Resource quantities in the canonical form the API server stores them: ``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from tokenfleet.localkube.errors import bad_request

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIX_OF = {exp: suffix for suffix, exp in _DECIMAL.items()}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def _decimal(amount: Fraction, exponent_format: bool) -> str:
    if amount == 0:
        return "0"
    for exp in range(18, -10, -3):  # the largest power of 1000 that keeps the number whole
        scaled = amount / Fraction(10) ** exp
        if scaled.denominator == 1:
            suffix = (f"e{exp}" if exp else "") if exponent_format else _SUFFIX_OF[exp]
            return f"{scaled.numerator}{suffix}"
    return f"{math.ceil(amount * 10 ** 9)}{'e-9' if exponent_format else 'n'}"  # below 1n rounds up


def canonical(value: Any) -> Any:
    """The canonical string of a quantity (numbers too); anything that is not a quantity is returned as is."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return value
    number, suffix = Fraction(match[1]), match[2] or ""
    if suffix in _BINARY:
        amount = number * _BINARY[suffix]
        if amount.denominator == 1:
            whole = amount.numerator
            for name, size in reversed(_BINARY.items()):
                if whole and whole % size == 0:
                    return f"{whole // size}{name}"
            return str(whole)
        return _decimal(amount, False)
    if suffix[:1] in ("e", "E"):
        return _decimal(number * Fraction(10) ** int(suffix[1:]), True)
    return _decimal(number * Fraction(10) ** _DECIMAL[suffix], False)


def is_quantity(value: Any) -> bool:
    """Whether the API server can decode ``value`` as a resource quantity (a number, or a string like 500m)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    return bool(_QUANTITY.match(str(value).strip()))


def canonical_resources(resources: Any) -> None:
    """Canonicalise ``requests``/``limits`` of a container's ``resources`` in place; a non-quantity is a 400."""
    if not isinstance(resources, dict):
        return
    for key in ("requests", "limits"):
        if isinstance(resources.get(key), dict):
            for name, value in resources[key].items():
                if not is_quantity(value):  # the API server fails to decode the object (400, not 422)
                    raise bad_request(f"unable to decode resources.{key}[{name}] {value!r}: quantities must match "
                                      "the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
            resources[key] = {name: canonical(v) for name, v in resources[key].items()}
