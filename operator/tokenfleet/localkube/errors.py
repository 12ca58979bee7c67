"""API errors as the real API server reports them: ``kind: Status`` bodies with reason and code."""

from __future__ import annotations

from typing import Any


class KubeError(Exception):
    """An error answered as a ``Status`` object (``reason`` is the machine-readable word)."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(res: Any, name: str) -> dict:
    return {"name": name, "group": res.group, "kind": res.plural}


def not_found(res: Any, name: str) -> KubeError:
    return KubeError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def already_exists(res: Any, name: str) -> KubeError:
    return KubeError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', _details(res, name))


def conflict(res: Any, name: str, why: str = "the object has been modified; please apply your changes "
                                                "to the latest version and try again") -> KubeError:
    return KubeError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}',
                     _details(res, name))


def invalid(res: Any, name: str, causes: list[tuple[str, str]]) -> KubeError:
    """422 Invalid; ``causes`` are (field, message) pairs, the message already naming the field."""
    text = causes[0][1] if len(causes) == 1 else "[" + ", ".join(m for _, m in causes) + "]"
    details = {**_details(res, name), "kind": res.kind,
               "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]}
    return KubeError(422, "Invalid", f'{res.qualified_kind} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def gone(message: str) -> KubeError:
    return KubeError(410, "Expired", message)


def unprocessable(message: str) -> KubeError:
    """422 for a patch that cannot be applied (e.g. a failed JSON-patch ``test``)."""
    return KubeError(422, "Invalid", message)


def method_not_allowed(message: str) -> KubeError:
    return KubeError(405, "MethodNotAllowed", message)


def unsupported_media(message: str) -> KubeError:
    return KubeError(415, "UnsupportedMediaType", message)


def endpoint_not_found(path: str) -> KubeError:
    return KubeError(404, "NotFound", f"the server could not find the requested resource ({path})",
                     {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
