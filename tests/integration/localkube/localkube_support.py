"""Builders and polling for the emulator's tests (imported by the test modules of this folder)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import httpx


def tier(name: str, **spec) -> dict:
    """A minimal valid ModelTier."""
    body = {"model": {"source": "org/model", "parametersB": 1}, **spec}
    return {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier", "metadata": {"name": name}, "spec": body}


def deployment(name: str, replicas: int = 1, **labels: str) -> dict:
    match = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {**match, **labels}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": match},
                     "template": {"metadata": {"labels": match},
                                  "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}}


def eventually(check: Callable[[], object], timeout: float = 5.0, interval: float = 0.02):
    """Poll ``check`` until it returns something truthy; its last value (or exception) fails the test."""
    deadline, value = time.monotonic() + timeout, None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last value {value!r}")
        time.sleep(interval)


def raw(kube: Any, method: str, path: str, body: Any = None, content_type: str = "application/json",
        accept: str = "application/json") -> tuple[int, Any]:
    """One HTTP request to the emulator with no client-side validation: (status, decoded JSON body)."""
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    response = httpx.request(method, kube.url + path, content=data,
                             headers={"Content-Type": content_type, "Accept": accept}, timeout=10)
    return response.status_code, response.json() if response.content else None
