"""OpenAI-shaped errors (``{"error": {"message", "type", "code"}}``) and the statuses the router answers with."""

from __future__ import annotations

import orjson


class RouterError(Exception):
    """An error answered to the client as an HTTP status and an OpenAI-style body."""

    def __init__(self, status: int, message: str, type_: str, code: str, *, param: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def headers(self) -> list[tuple[bytes, bytes]]:
        extra = [(b"retry-after", str(self.retry_after).encode())] if self.retry_after is not None else []
        return [(b"content-type", b"application/json"), *extra]


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> RouterError:
    return RouterError(400, message, "invalid_request_error", code, param=param)


def unauthorized(message: str) -> RouterError:
    return RouterError(401, message, "invalid_request_error", "invalid_api_key")


def not_found(message: str) -> RouterError:
    return RouterError(404, message, "invalid_request_error", "not_found")


def method_not_allowed(method: str) -> RouterError:
    return RouterError(405, f"method {method} not allowed here", "invalid_request_error", "method_not_allowed")


def too_large(limit: int) -> RouterError:
    return RouterError(413, f"request body larger than {limit} bytes", "invalid_request_error", "request_too_large")


def saturated(retry_after: int = 1) -> RouterError:
    return RouterError(429, "every tier that could serve this request is at its concurrency and queue limit; "
                       "retry later", "rate_limit_error", "all_tiers_saturated", retry_after=retry_after)


def budget_exceeded(limit: float) -> RouterError:
    return RouterError(429, f"the fleet's monthly budget of {limit:g} USD is spent", "rate_limit_error",
                       "budget_exceeded", retry_after=3600)


def cold_start_timeout(tier: str, waited: float) -> RouterError:
    return RouterError(503, f"tier {tier} is starting from zero replicas and was not ready within {waited:g}s; "
                       "retry shortly", "service_unavailable_error", "tier_cold_start_timeout", retry_after=5)


def all_failed(detail: str) -> RouterError:
    return RouterError(502, f"every tier failed: {detail}", "upstream_error", "all_tiers_failed")


def internal(message: str) -> RouterError:
    return RouterError(500, message, "server_error", "internal_error")
