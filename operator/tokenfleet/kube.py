"""The only module that talks to the Kubernetes API: small, general calls over the official client.

Objects go in and come out as plain dicts exactly as the API serves them (camelCase), so that
they compare directly with what ``tokenfleet.render`` builds. Every call is synchronous; the
operator's handlers run in kopf's thread pool.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tokenfleet import GROUP
from tokenfleet.api.v1alpha1 import KINDS
from tokenfleet.patching import merge_patch

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read
LAST_APPLIED = "tokenfleet.io/last-applied"  # annotation on children: what the operator last applied

# Built-in kinds: (apiVersion, kind) -> (client API class, snake-case kind in its method names)
CUSTOM_VERBS = {"read": "get"}  # CustomObjectsApi says get where the typed APIs say read
BUILTIN: dict[tuple[str, str], tuple[type, str]] = {
    ("apps/v1", "Deployment"): (client.AppsV1Api, "deployment"),
    ("v1", "Service"): (client.CoreV1Api, "service"),
    ("v1", "ConfigMap"): (client.CoreV1Api, "config_map"),
    ("v1", "Event"): (client.CoreV1Api, "event"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (client.AutoscalingV2Api, "horizontal_pod_autoscaler"),
}


def is_not_found(err: Exception) -> bool:
    return isinstance(err, ApiException) and err.status == 404


def api_error_message(err: ApiException) -> str:
    """The API's own message for a failed call (its Status body), else the HTTP reason."""
    try:
        body = json.loads(err.body or "")
        return f"{err.status} {body.get('reason', '')}: {body.get('message', '')}".strip()
    except (ValueError, TypeError, AttributeError):
        return f"{err.status} {err.reason}"


def api_client_from_environment() -> client.ApiClient:
    """A client for the cluster the process runs in, else for $KUBECONFIG (or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration)
    return client.ApiClient(configuration)


@dataclass
class Kube:
    """Generic verbs over the API: built-in kinds through their typed APIs, ours through CustomObjectsApi."""

    api_client: client.ApiClient
    field_manager: str = "tokenfleet-operator"

    @classmethod
    def from_environment(cls) -> "Kube":
        return cls(api_client_from_environment())

    # ------------------------------------------------------------------ plumbing

    def _method(self, api_version: str, kind: str, verb: str, subresource: str | None):
        """The client method for a verb on a kind, and the arguments that locate the kind."""
        suffix = f"_{subresource}" if subresource else ""
        if kind in KINDS and api_version.startswith(f"{GROUP}/"):
            group, version = api_version.split("/", 1)
            custom = client.CustomObjectsApi(self.api_client)
            fn = getattr(custom, f"{CUSTOM_VERBS.get(verb, verb)}_namespaced_custom_object{suffix}")
            return fn, {"group": group, "version": version, "plural": KINDS[kind].plural}
        try:
            api_class, snake = BUILTIN[(api_version, kind)]
        except KeyError:
            raise ValueError(f"kube: unsupported kind {api_version} {kind}") from None
        return getattr(api_class(self.api_client), f"{verb}_namespaced_{snake}{suffix}"), {}

    def _call(self, api_version: str, kind: str, verb: str, subresource: str | None = None, **kwargs) -> dict:
        """One API call; returns the response body as served (a dict)."""
        fn, where = self._method(api_version, kind, verb, subresource)
        response = fn(**where, **kwargs, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        data = response.data
        return json.loads(data) if data else {}

    # ------------------------------------------------------------------ verbs

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        """The object, or None when it does not exist."""
        try:
            return self._call(api_version, kind, "read", namespace=namespace, name=name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str | None = None) -> list[dict]:
        """Objects of a kind in a namespace, optionally filtered by a label selector."""
        kwargs = {"label_selector": label_selector} if label_selector else {}
        return self._call(api_version, kind, "list", namespace=namespace, **kwargs).get("items") or []

    def list_custom(self, api_version: str, plural: str, namespace: str) -> list[dict]:
        """Objects of another project's custom resource (e.g. KEDA's ScaledObjects); [] when it is not installed."""
        group, version = api_version.split("/", 1)
        api = client.CustomObjectsApi(self.api_client)
        try:
            response = api.list_namespaced_custom_object(group, version, namespace, plural, _preload_content=False,
                                                         _request_timeout=REQUEST_TIMEOUT)
        except ApiException as err:
            if err.status == 404:
                return []
            raise
        return (json.loads(response.data) if response.data else {}).get("items") or []

    def create(self, obj: dict) -> dict:
        """Create ``obj`` in its namespace; raises ApiException 409 when it exists already."""
        namespace = obj["metadata"].get("namespace") or "default"
        return self._call(obj["apiVersion"], obj["kind"], "create", namespace=namespace,
                          body=quantities_as_strings(obj), field_manager=self.field_manager)

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict,
              subresource: str | None = None) -> dict:
        """JSON merge patch (RFC 7386) of an object or of its ``status`` or ``scale`` subresource."""
        return self._call(api_version, kind, "patch", subresource, namespace=namespace, name=name, body=patch,
                          field_manager=self.field_manager, _content_type=MERGE_PATCH)

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict) -> dict:
        """Merge ``status`` into the object's status subresource."""
        return self.patch(api_version, kind, namespace, name, {"status": status}, subresource="status")

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete in the background (owned objects are garbage-collected); False when it was gone."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._call(api_version, kind, "delete", namespace=namespace, name=name, body=options)
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    # ------------------------------------------------------------------ higher level, still general

    def apply(self, desired: dict, keep: tuple[tuple[str, ...], ...] = ()) -> tuple[dict, str]:
        """Make the live object match ``desired`` in the fields it sets; no write when it already does.

        Returns the live object and what was done: ``created``, ``patched`` or ``unchanged``.
        ``keep`` lists field paths (e.g. ``("spec", "replicas")``) that are set at creation and
        never changed afterwards: another actor (the autoscaler) owns them from then on.
        Fields the operator set before and no longer sets are removed (three-way merge, like
        ``kubectl apply``), through the ``tokenfleet.io/last-applied`` annotation.
        """
        api_version, kind, md = desired["apiVersion"], desired["kind"], desired["metadata"]
        namespace, name = md.get("namespace", "default"), md["name"]
        owned = without_paths(desired, keep)
        stamped = with_last_applied(desired, owned)
        live = self.get(api_version, kind, namespace, name)
        if live is None:
            try:
                return self.create(stamped), "created"
            except ApiException as err:
                if err.status != 409:
                    raise
                live = self.get(api_version, kind, namespace, name)  # created meanwhile: fall through to patch
                if live is None:
                    raise
        last = last_applied(live)
        last = without_paths(last, keep) if last else None  # never remove a field handed over to others
        patch = merge_patch(with_last_applied(owned, owned), live, last)
        if patch is None:
            return live, "unchanged"
        log.info("patching %s %s/%s: %s", kind, namespace, name, sorted(_paths(patch)))
        return self.patch(api_version, kind, namespace, name, patch), "patched"

    def create_event(self, involved: dict, *, type: str, reason: str, message: str,
                     component: str = "tokenfleet-operator") -> dict | None:
        """Post a core/v1 Event about ``involved`` (best effort: failures are logged, never raised)."""
        md = involved.get("metadata", {})
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{md.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": md.get("namespace")},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": md.get("name"),
                "namespace": md.get("namespace"),
                "uid": md.get("uid"),
                "resourceVersion": md.get("resourceVersion"),
            },
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": os.environ.get("HOSTNAME", component),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        event["involvedObject"] = {k: v for k, v in event["involvedObject"].items() if v is not None}
        try:
            return self.create(event)
        except (ApiException, OSError) as err:
            log.warning("could not post event %s for %s: %s", reason, md.get("name"), err)
            return None


# ---------------------------------------------------------------------- pure helpers of apply


def without_paths(obj: dict, paths: tuple[tuple[str, ...], ...]) -> dict:
    """A copy of ``obj`` without the given field paths."""
    out = json.loads(json.dumps(obj))
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def with_last_applied(obj: dict, applied: dict) -> dict:
    """``obj`` with the last-applied annotation recording ``applied`` (compact, key-sorted JSON)."""
    out = json.loads(json.dumps(obj))
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[LAST_APPLIED] = json.dumps(applied, sort_keys=True, separators=(",", ":"))
    return out


def last_applied(live: dict) -> dict | None:
    """What the operator last applied to ``live``, from its annotation (None when absent or unreadable)."""
    raw = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def quantities_as_strings(obj):
    """A copy with resource quantities written as strings, the form the API serves (and the typed
    client's models insist on): ``nvidia.com/gpu: 1`` becomes ``"1"``."""
    if isinstance(obj, list):
        return [quantities_as_strings(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if key == "resources" and isinstance(value, dict):
            value = {k: ({q: str(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else n
                          for q, n in v.items()} if k in ("requests", "limits") and isinstance(v, dict) else v)
                     for k, v in value.items()}
        out[key] = quantities_as_strings(value)
    return out


def _paths(patch: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in patch.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key != "annotations":
            out += _paths(value, path)
        else:
            out.append(path)
    return out
