"""Shared by the handlers: operator state in kopf's memo, per-object locks, status writes, outcomes."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import kopf
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Counter, Gauge
from urllib3.exceptions import HTTPError

from tokenfleet import API_VERSION, GROUP, VERSION
from tokenfleet.api.common import now_rfc3339
from tokenfleet.api.v1alpha1 import KINDS as KIND_INFO
from tokenfleet.conditions import (
    APPLY_FAILED,
    INSUFFICIENT_GPU_MEMORY,
    INVALID_SPEC,
    OURS,
    Condition,
    Problem,
    merge_conditions,
    new_problem,
    status_patch,
)
from tokenfleet.config import OperatorConfig
from tokenfleet.kube import Kube, api_error_message
from tokenfleet.render import child_name


KINDS = ("ModelTier", "CachePolicy", "InferenceFleet")
PERMANENT = (INVALID_SPEC, INSUFFICIENT_GPU_MEMORY)  # only a spec change can fix these: no retries
RETRY_DELAY = 10.0  # seconds before kopf retries a reconcile that failed at the API


class KeyedLocks:
    """One lock per object, so that a kind's handler and a child's event never reconcile it at once."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple, threading.Lock] = {}

    @contextlib.contextmanager
    def hold(self, key: tuple) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


def build_memo(config: OperatorConfig, kube: Kube, registry: CollectorRegistry | None = None) -> kopf.Memo:
    """The operator's shared state, reached by every handler as ``memo`` (no module-level singletons).

    memo.config, memo.settings (rendering), memo.kube, memo.locks, memo.metrics (the
    prometheus-client registry served on /metrics; other handler modules add their series
    to it) and memo.reconcile_errors.
    """
    registry = registry if registry is not None else CollectorRegistry()
    errors = Counter(
        "tokenfleet_operator_reconcile_errors", "Reconciles that did not converge: an API error, an invalid "
        "spec or a missing dependency.", ["kind"], registry=registry,
    )
    for kind in KINDS:
        errors.labels(kind)
    conditions = Gauge(
        "tokenfleet_operator_condition", "1 while a resource's condition is True, else 0 (Ready, Progressing, "
        "Degraded; what the TokenfleetResourceDegraded alert watches).", ["kind", "namespace", "name", "type"],
        registry=registry,
    )
    memo = kopf.Memo()
    memo.config = config
    memo.settings = config.render_settings
    memo.kube = kube
    memo.locks = KeyedLocks()
    memo.metrics = registry
    memo.reconcile_errors = errors
    memo.conditions = conditions
    return memo


def gone(obj: dict | None) -> bool:
    """The object no longer exists or is being deleted: nothing to reconcile."""
    return obj is None or bool((obj.get("metadata") or {}).get("deletionTimestamp"))


@contextlib.contextmanager
def held(memo: kopf.Memo, kind: str, namespace: str, name: str) -> Iterator[dict | None]:
    """The custom resource as the API serves it now, under its lock; None when it is gone or going."""
    with memo.locks.hold((kind, namespace, name)):
        obj = memo.kube.get(API_VERSION, kind, namespace, name)
        if gone(obj):
            forget_conditions(memo, kind, namespace, name)  # also here: a reconcile racing the deletion
            yield None
        else:
            yield obj


def apply_children(kube: Kube, kind: str, obj: dict, children: list[dict],
                   keep: tuple[tuple[str, ...], ...] = ()) -> tuple[dict | None, Problem | None]:
    """Apply a resource's children in order (``keep``: Deployment fields set only at creation).

    Returns the resource's live Deployment (the one just applied, else the one that exists, else
    None) and an ApplyFailed problem when the API refused a child (the children after it wait).
    """
    md = obj["metadata"]
    deployment, problem = None, None
    try:
        for child in children:
            is_deployment = child["kind"] == "Deployment"
            live, _ = kube.apply(child, keep if is_deployment else ())
            if is_deployment:
                deployment = live
    except ApiException as err:
        problem = apply_problem(kind, md["name"], err)
    if deployment is None:
        deployment = kube.get("apps/v1", "Deployment", md["namespace"], child_name(kind, md["name"]))
    return deployment, problem


def write_status(memo: kopf.Memo, obj: dict, fields: dict, conditions: list[Condition],
                 problem: Problem | None) -> bool:
    """Patch the status only where it differs; post a Warning Event when a problem first shows.

    Returns whether a write was made. Other actors' status fields and conditions are kept.
    """
    md = obj["metadata"]
    status = obj.get("status") or {}
    generation = md.get("generation")
    merged = merge_conditions(status.get("conditions"), conditions, generation, now_rfc3339())
    desired = {**fields, "observedGeneration": generation, "conditions": merged}
    patch = status_patch(status, desired)
    if patch:
        memo.kube.patch_status(obj.get("apiVersion", API_VERSION), obj["kind"], md["namespace"], md["name"], patch)
    if new_problem(status.get("conditions"), problem):
        memo.kube.create_event(obj, type="Warning", reason=problem.reason, message=problem.message)
    for cond in conditions:
        memo.conditions.labels(obj["kind"], md["namespace"], md["name"], cond.type).set(cond.status == "True")
    return bool(patch)


def forget_conditions(memo: kopf.Memo, kind: str, namespace: str, name: str) -> None:
    """Drop a deleted resource's condition series (a Degraded one would otherwise alert forever)."""
    for type_ in OURS:
        with contextlib.suppress(KeyError):
            memo.conditions.remove(kind, namespace, name, type_)


def register_forget_conditions(registry: kopf.OperatorRegistry, kind: str) -> None:
    """On each deletion of a ``kind`` object, ``forget_conditions`` (no finalizer needed: an event handler)."""

    @kopf.on.event(GROUP, VERSION, KIND_INFO[kind].plural, registry=registry, id=f"{kind.lower()}_conditions_forget")
    def forget(type: str, namespace: str, name: str, memo: kopf.Memo, **_) -> None:
        if type == "DELETED":
            forget_conditions(memo, kind, namespace, name)


def apply_problem(kind: str, name: str, err: ApiException) -> Problem:
    return Problem(APPLY_FAILED, f"{kind} {name}: the API refused a child: {api_error_message(err)}")


API_FAILURES = (ApiException, HTTPError, OSError)  # the API answered an error, or could not be reached


def failure_message(err: Exception) -> str:
    """The API's own words for a failed call, else the connection error's."""
    return api_error_message(err) if isinstance(err, ApiException) else str(err)


def settle(kind: str, memo: kopf.Memo, reconcile: Callable[[], Problem | None]) -> None:
    """Run a reconcile from a change handler and turn its outcome into kopf's retry semantics.

    A spec that cannot work raises kopf.PermanentError (no retries: the next spec change is
    handled afresh); an API failure raises kopf.TemporaryError (retried after RETRY_DELAY);
    a missing dependency returns quietly: the dependency's own events re-reconcile it.
    """
    try:
        problem = reconcile()
    except API_FAILURES as err:
        memo.reconcile_errors.labels(kind).inc()
        raise kopf.TemporaryError(f"API call failed: {failure_message(err)}", delay=RETRY_DELAY) from err
    except Exception:
        memo.reconcile_errors.labels(kind).inc()
        raise  # a bug: kopf logs it with its traceback and retries later
    if problem is None:
        return
    memo.reconcile_errors.labels(kind).inc()
    if problem.reason in PERMANENT:
        raise kopf.PermanentError(problem.message)
    if problem.reason == APPLY_FAILED:
        raise kopf.TemporaryError(problem.message, delay=RETRY_DELAY)


def refresh(kind: str, memo: kopf.Memo, reconcile: Callable[[], Problem | None], logger: logging.Logger) -> None:
    """Run a reconcile triggered by another object's event; failures are counted and logged, never raised."""
    try:
        problem = reconcile()
    except API_FAILURES as err:
        memo.reconcile_errors.labels(kind).inc()
        logger.warning(f"reconciling {kind} failed: {failure_message(err)}")
        return
    except Exception:
        memo.reconcile_errors.labels(kind).inc()
        raise  # a bug: kopf logs it with its traceback
    if problem is not None:
        memo.reconcile_errors.labels(kind).inc()
