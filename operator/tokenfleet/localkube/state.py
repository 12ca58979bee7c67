"""What one emulator instance holds: registry, store, settings, and the record of served requests."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from tokenfleet.localkube.resources import Registry
from tokenfleet.localkube.store import Store

MUTATING = ("POST", "PUT", "PATCH", "DELETE")


@dataclasses.dataclass(frozen=True)
class ServedRequest:
    """One request the emulator answered (``name`` is the created object's for a POST)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    resource: str | None = None  # plural, e.g. "deployments"
    group: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    time: float = 0.0

    @property
    def is_write(self) -> bool:
        """A mutating request that was not a dry run (failed ones included: they were attempted writes)."""
        return self.method in MUTATING and self.query.get("dryRun") != "All"

    def matches(self, resource: str | None, namespace: str | None, name: str | None) -> bool:
        if resource is not None and resource not in (self.resource, f"{self.resource}.{self.group}"):
            return False
        return (namespace is None or namespace == self.namespace) and (name is None or name == self.name)


@dataclasses.dataclass
class State:
    """Shared by the HTTP handlers and the Python API; ``requests`` may be read from any thread."""

    registry: Registry
    store: Store
    port: int = 0
    watch_timeout: float = 1800.0
    bookmark_interval: float = 5.0
    requests: list[ServedRequest] = dataclasses.field(default_factory=list)
    lock: Any = dataclasses.field(default_factory=threading.Lock)
    rbac: bool = False  # authorize requests with a known bearer token by the stored RBAC objects (rbac.py)
    tokens: dict = dataclasses.field(default_factory=dict)  # bearer token -> rbac.Identity

    def record(self, request: ServedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def served(self) -> list[ServedRequest]:
        with self.lock:
            return list(self.requests)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def write_count(self, resource: str | None = None, namespace: str | None = None, name: str | None = None) -> int:
        return sum(1 for r in self.served() if r.is_write and r.matches(resource, namespace, name))


def new_state(history: int = 10000) -> State:
    registry = Registry()
    return State(registry=registry, store=Store(registry, history=history))
