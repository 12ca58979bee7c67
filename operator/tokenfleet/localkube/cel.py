"""CEL rules of ``x-kubernetes-validations`` evaluated with cel-python (pure Python), programs cached by rule."""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

@functools.lru_cache(maxsize=1)
def _celpy() -> Any:
    """cel-python, imported on first use (it takes a few tenths of a second); None if it is not installed."""
    try:
        import celpy
    except ImportError:  # pragma: no cover - only where the dependency is missing: rules are skipped
        log.warning("cel-python is not installed: x-kubernetes-validations rules are not evaluated")
        return None
    return celpy


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    return _celpy().Environment()


@functools.lru_cache(maxsize=512)
def _program(rule: str) -> Any:
    env = _environment()
    return env.program(env.compile(rule))


def _evaluate(rule: str, value: Any, old: Any) -> Any:
    celpy = _celpy()
    activation = {"self": celpy.json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    return _program(rule).evaluate(activation)


def check(rule: dict, value: Any, old: Any) -> str | None:
    """The error message if ``rule`` fails on ``value`` (None when it holds, is skipped, or CEL is unavailable).

    Transition rules (those that mention ``oldSelf``) run only on updates where an old value exists,
    as in the API server. An evaluation error (e.g. a missing field) fails the rule with its reason.
    """
    text = rule.get("rule", "")
    celpy = _celpy()
    if celpy is None or not text:
        return None
    if "oldSelf" in text and old is None:
        return None
    try:
        result = _evaluate(text, value, old)
    except celpy.CELParseError as err:
        log.warning("CEL rule %r does not compile: %s", text, err)
        return None
    except Exception as err:  # CELEvalError and friends: the rule could not be evaluated
        return f"{_reason(err)} evaluating rule: {text}"
    if isinstance(result, Exception):
        return f"{_reason(result)} evaluating rule: {text}"
    if bool(result):
        return None
    return _message(rule, value, old) or rule.get("message") or f"failed rule: {text}"


def _message(rule: dict, value: Any, old: Any) -> str | None:
    """The rule's ``messageExpression`` evaluated, when it has one that yields a non-empty string."""
    expression = rule.get("messageExpression")
    if not expression:
        return None
    try:
        result = _evaluate(expression, value, old)
    except Exception:  # as in the API server: a failing messageExpression falls back to message
        return None
    return str(result) if isinstance(result, str) and result.strip() else None


# A rule's ``reason`` -> the words of the field error it produces.
REASONS = {"FieldValueInvalid": "Invalid value", "FieldValueForbidden": "Forbidden",
           "FieldValueRequired": "Required value", "FieldValueDuplicate": "Duplicate value"}


def _reason(err: Exception) -> str:
    args = getattr(err, "args", ())
    return str(args[0]) if args else str(err)
